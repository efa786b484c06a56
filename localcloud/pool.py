"""The local EC2 pool: one real ``lighthpc-node`` process per instance the workflow launches.

A watcher thread lists the emulator's EC2 instances tagged with our mission tag (when the
emulator in this process reports a change, ``localcloud.instance_events``, and every
``LISTING_SECONDS``; every ``poll_seconds`` without it) and starts the node agent for each,
exactly as an instance's user data would on AWS: with ``AWS_ENDPOINT_URL`` at the emulator,
dummy credentials, the deployment's ``Settings`` and ``AWS_EC2_METADATA_SERVICE_ENDPOINT``
at that instance's own IMDSv2 emulator. The pool keeps a handle per instance so tests and
chaos tooling can interrupt (Spot notice), kill (SIGKILL, no report), pause or list nodes.
Each node's stdout/stderr (its JSON log) goes to ``<log_dir>/<instance-id>.log`` (a fresh
temporary directory by default). When a node process ends, its instance is terminated in the
emulator, and an instance terminated from outside (node_watch after ``lighthpc cancel``)
takes its node's process tree with it, as on EC2 (after ``TERMINATED_GRACE_SECONDS``: an
agent terminates its own instance as its last act); ``close()`` leaves no process behind (it
kills whole process trees). Should this process die without ``close()`` (SIGKILL, a crash),
each node dies with it: the pool names itself in ``proctree.ENV_PARENT_PID`` and the agent
sets a parent-death signal (``proctree.die_with_parent``); its workers follow it.

A node starts as it does on AWS (docs/architecture.md, "Node start"): the instance exists
(pending → running) for ``boot_seconds`` with nothing on it; then, for ``install_seconds``, the
boot heartbeater of the user data beats the attempt's task token (read from the unit item)
every ``BOOT_BEAT_SECONDS`` while the node package installs; then the agent starts. The
defaults are small for the demo; ``REALISTIC_BOOT_SECONDS`` and ``MEASURED_INSTALL_SECONDS``
are AWS's figures (DESIGN.md §10 and the install measured for the node's wheelhouse).

Slots are bounded: a node gets ``min(slots_per_node or CPUs, free slots)`` and an instance
waits for a free slot when the host is full, like a Spot request waiting for capacity.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from localcloud import instance_events
from localcloud.iam import NODE_COMMAND as IAM_NODE_COMMAND
from localcloud.iam import LocalIam
from localcloud.imds import ImdsEmulator
from node_agent import proctree
from node_agent.config import ENV_CACHE_DIR, ENV_MAX_SLOTS, ENV_SLOTS, ENV_WORK_DIR
from node_agent.identity import ENV_IMDS_ENDPOINT
from node_agent.liveness import BOOT_BEAT_SECONDS
from workflow.aws.ec2 import TAG_ATTEMPT, TAG_MISSION, TAG_UNIT
from workflow.aws.services import Services
from workflow.records import UNIT_PREFIX
from workflow.settings import Settings
from workflow.workloads.command import LOCAL_ROOT_ENV

LOGGER = logging.getLogger(__name__)

DUMMY_CREDENTIAL: Final = "testing"
NODE_COMMAND: Final = (sys.executable, "-m", "node_agent.main")
_LIVE_STATES: Final = ("pending", "running")
DEFAULT_BOOT_SECONDS: Final = 0.5
# AWS: pending→running 10-20 s + AL2023 boot 15-30 s (DESIGN.md §10), typical 25 s; then
# ``uv pip install`` of the node's wheelhouse (venv + install, measured on 2 shared cores).
REALISTIC_BOOT_SECONDS: Final = 25.0
MEASURED_INSTALL_SECONDS: Final = 16.0
TERMINATED_GRACE_SECONDS: Final = 5.0
# Instances listed this often when the emulator reports each change: what no event covers
# (an instance terminated outside moto's backend) is seen within it.
LISTING_SECONDS: Final = 1.0


class CloudEndpoint(Protocol):
    """What the pool needs from ``EmbeddedCloud``."""

    @property
    def endpoint_url(self) -> str: ...

    @property
    def region(self) -> str: ...


@dataclass
class NodeHandle:
    """One local instance and the node agent process serving it."""

    instance_id: str
    mission_id: str
    unit_id: str
    attempt: int
    slots: int
    process: subprocess.Popen[bytes]
    imds: ImdsEmulator
    log_path: Path
    started_at: float = field(default_factory=time.monotonic)
    finished: bool = False
    killed_pids: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    @property
    def running(self) -> bool:
        return self.process.poll() is None


def _endpoint(cloud: CloudEndpoint | Services) -> tuple[str, str, Any]:
    """(endpoint URL, region, EC2 client) from a cloud or from services built for it."""
    if isinstance(cloud, Services):
        meta = cloud.ec2.meta
        return str(meta.endpoint_url), str(meta.region_name), cloud.ec2
    from localcloud import sdk_sessions

    session = sdk_sessions.session(DUMMY_CREDENTIAL, DUMMY_CREDENTIAL, cloud.region)
    return cloud.endpoint_url, cloud.region, session.client("ec2", endpoint_url=cloud.endpoint_url)


def _clients(cloud: CloudEndpoint | Services, names: tuple[str, str]) -> tuple[Any, Any]:
    if isinstance(cloud, Services):
        return cloud.ddb, cloud.sfn
    from localcloud import sdk_sessions

    session = sdk_sessions.session(DUMMY_CREDENTIAL, DUMMY_CREDENTIAL, cloud.region)
    first, second = (session.client(n, endpoint_url=cloud.endpoint_url) for n in names)
    return first, second


def node_capacity(total_slots: int, slots_per_node: int | None) -> int:
    """Nodes the pool runs at once when each takes its full ``slots_per_node``."""
    per_node = slots_per_node or os.cpu_count() or 1
    return max(1, total_slots // per_node)


class LocalNodePool:
    """Runs a node agent subprocess per tagged instance in the embedded cloud."""

    def __init__(
        self,
        cloud: CloudEndpoint | Services,
        settings: Settings,
        slots_per_node: int | None = None,
        env: Mapping[str, str] | None = None,
        *,
        log_dir: Path | None = None,
        total_slots: int | None = None,
        poll_seconds: float = 0.2,
        tags_in_metadata: bool = True,
        boot_seconds: float = DEFAULT_BOOT_SECONDS,
        install_seconds: float = 0.0,
        boot_heartbeat: bool = True,
        iam: LocalIam | None = None,
    ) -> None:
        """``iam``: run each node under the node role (``cloud.iam`` of an ``EmbeddedCloud``
        is taken when ``cloud`` is one and ``iam`` is not given)."""
        self.iam = iam if iam is not None else getattr(cloud, "iam", None)
        self.endpoint_url, self.region, self._ec2 = _endpoint(cloud)
        self.settings = settings
        self.slots_per_node = slots_per_node
        self.total_slots = total_slots or os.cpu_count() or 1
        self.env = dict(env or {})
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="lighthpc-nodes-"))
        self.work_root = self.log_dir / "work"
        self.poll_seconds = poll_seconds
        self.tags_in_metadata = tags_in_metadata
        self.boot_seconds = boot_seconds
        self.install_seconds = install_seconds
        self.boot_heartbeat = boot_heartbeat
        self.boot_beats: dict[str, int] = {}
        self._next_beat: dict[str, float] = {}
        self._terminated_seen: dict[str, float] = {}  # instance id -> first seen terminated
        self._ddb, self._sfn = _clients(cloud, ("dynamodb", "stepfunctions"))
        self.errors: list[BaseException] = []
        self._lock = threading.RLock()
        self._handles: dict[str, NodeHandle] = {}
        self._waiting: dict[str, tuple[dict[str, Any], float]] = {}
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._changed = threading.Event()  # set by the emulator's EC2, and by close()
        self._told = False  # whether the emulator sets it (instance_events)
        self._thread = threading.Thread(target=self._watch, name="local-node-pool", daemon=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalNodePool:
        self._told = instance_events.subscribe(self._changed)
        self._thread.start()
        return self

    def __enter__(self) -> LocalNodePool:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop watching, kill every node's process tree, terminate their instances."""
        self._stop.set()
        self._changed.set()
        instance_events.unsubscribe(self._changed)
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._lock:
            handles = list(self._handles.values())
            waiting = list(self._waiting)
            self._waiting.clear()
        for handle in handles:
            if handle.running:
                handle.killed_pids.extend(proctree.kill_tree(handle.pid))
            self._reap(handle)
        self._terminate(waiting)

    # ---- queries and chaos ---------------------------------------------------------------

    def nodes(
        self, *, mission_id: str | None = None, running_only: bool = False
    ) -> list[NodeHandle]:
        with self._lock:
            handles = list(self._handles.values())
        return [
            h
            for h in handles
            if (mission_id is None or h.mission_id == mission_id)
            and (not running_only or h.running)
        ]

    def node(self, instance_id: str) -> NodeHandle:
        with self._lock:
            return self._handles[instance_id]

    def interrupt(self, instance_id: str, *, rebalance: bool = False) -> None:
        """Post a Spot notice (or a rebalance recommendation) in the node's IMDS."""
        imds = self.node(instance_id).imds
        if rebalance:
            imds.inject_rebalance()
        else:
            imds.inject_interruption()

    def kill(self, instance_id: str) -> list[int]:
        """SIGKILL the node's whole process tree: it vanishes without a report."""
        handle = self.node(instance_id)
        pids = proctree.kill_tree(handle.pid)
        handle.killed_pids.extend(pids)
        handle.process.wait()
        return pids

    def pause(self, instance_id: str, *, include_agent: bool = True) -> list[int]:
        """SIGSTOP the node's tree: a frozen node (no heartbeat, no progress). With
        ``include_agent=False`` only its workers freeze, so the agent still sees notices."""
        root = self.node(instance_id).pid
        pids = [*([root] if include_agent else []), *proctree.descendants(root)]
        proctree.signal_all(pids, signal.SIGSTOP)
        return pids

    def resume(self, instance_id: str) -> None:
        root = self.node(instance_id).pid
        proctree.signal_all([root, *proctree.descendants(root)], signal.SIGCONT)

    def wait(self, instance_id: str, timeout: float) -> int:
        """The node process's exit status (``subprocess.TimeoutExpired`` after ``timeout``)."""
        return self.node(instance_id).process.wait(timeout=timeout)

    # ---- the watcher ---------------------------------------------------------------------

    def _watch(self) -> None:
        listed_at = -float("inf")
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                every = LISTING_SECONDS if self._told else self.poll_seconds
                if self._changed.is_set() or now - listed_at >= every:
                    self._changed.clear()  # before the listing: a change during it is seen
                    listed_at = now
                    self._end_terminated(live=self._discover())
                self._reap_finished()
                self._launch_waiting()
            except (ClientError, BotoCoreError, OSError) as exc:
                LOGGER.warning("local node pool: %s", exc)
                self.errors.append(exc)
            self._changed.wait(self._until_next_boot())

    def _until_next_boot(self) -> float:
        """The next poll, or sooner when a waiting instance finishes booting before it: its
        node then starts at its boot's end, not up to a poll later."""
        now = time.monotonic()
        with self._lock:
            booted = [appeared + self.boot_seconds for _, appeared in self._waiting.values()]
        due = booted + [at + self.install_seconds for at in booted]  # its install's end too
        future = [at - now for at in due if at > now]
        return max(0.0, min([self.poll_seconds, *future]))

    def _discover(self) -> set[str]:
        """Queue the instances seen for the first time; the ids of every live one."""
        live: set[str] = set()
        paginator = self._ec2.get_paginator("describe_instances")
        for page in paginator.paginate(
            Filters=[
                {"Name": "tag-key", "Values": [TAG_MISSION]},
                {"Name": "instance-state-name", "Values": list(_LIVE_STATES)},
            ]
        ):
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    iid = str(instance["InstanceId"])
                    live.add(iid)
                    with self._lock:
                        if iid not in self._seen:
                            self._seen.add(iid)
                            self._waiting[iid] = (instance, time.monotonic())
        return live

    def _free_slots(self) -> int:
        used = sum(h.slots for h in self._handles.values() if not h.finished)
        return self.total_slots - used

    def _launch_waiting(self) -> None:
        now = time.monotonic()
        with self._lock:
            waiting = list(self._waiting.items())
        for iid, (instance, appeared) in waiting:
            booted = appeared + self.boot_seconds
            if now < booted:
                continue  # the instance exists; nothing runs on it yet
            if now < booted + self.install_seconds:
                if self.boot_heartbeat:
                    self._boot_beat(iid, instance, now)
                continue
            with self._lock:
                granted = min(self.slots_per_node or os.cpu_count() or 1, self._free_slots())
                if granted < 1:
                    return
                del self._waiting[iid]
                self._handles[iid] = self._spawn(instance, granted)

    def _boot_beat(self, iid: str, instance: Mapping[str, Any], now: float) -> None:
        """What the user data's boot heartbeater does before the install: read the token of
        this instance's attempt from the unit item and send a heartbeat with it."""
        if now < self._next_beat.get(iid, 0.0):
            return
        self._next_beat[iid] = now + BOOT_BEAT_SECONDS
        tags = {str(t["Key"]): str(t["Value"]) for t in instance.get("Tags", [])}
        item = self._ddb.get_item(
            TableName=self.settings.trans_table,
            Key={
                "missionId": {"S": tags.get(TAG_MISSION, "")},
                "shardId": {"S": UNIT_PREFIX + tags.get(TAG_UNIT, "")},
            },
            ConsistentRead=True,
        ).get("Item", {})
        if item.get("attempt", {}).get("N") != tags.get(TAG_ATTEMPT):
            return  # superseded: the token is not this instance's
        try:
            self._sfn.send_task_heartbeat(taskToken=item["taskToken"]["S"])
        except ClientError as exc:
            LOGGER.info("boot heartbeat of %s refused: %s", iid, exc)
            self._next_beat[iid] = float("inf")
            return
        self.boot_beats[iid] = self.boot_beats.get(iid, 0) + 1

    def _spawn(self, instance: Mapping[str, Any], slots: int) -> NodeHandle:
        iid = str(instance["InstanceId"])
        tags = {str(t["Key"]): str(t["Value"]) for t in instance.get("Tags", [])}
        imds = ImdsEmulator(
            iid,
            instance_type=str(instance.get("InstanceType", "c6i.large")),
            tags=tags,
            life_cycle=str(instance.get("InstanceLifecycle") or "on-demand"),
            availability_zone=str(instance.get("Placement", {}).get("AvailabilityZone", "")),
            tags_in_metadata=self.tags_in_metadata,
        )
        log_path = self.log_dir / f"{iid}.log"
        with log_path.open("ab") as sink:
            process = subprocess.Popen(
                NODE_COMMAND if self.iam is None else IAM_NODE_COMMAND,
                env=self._node_env(imds, slots, iid),
                cwd=self.log_dir,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes it all
            )
        attempt = tags.get(TAG_ATTEMPT, "0")
        LOGGER.info("local node %s started (pid %s, %s slots)", iid, process.pid, slots)
        return NodeHandle(
            instance_id=iid,
            mission_id=tags.get(TAG_MISSION, ""),
            unit_id=tags.get(TAG_UNIT, ""),
            attempt=int(attempt) if attempt.isdigit() else 0,
            slots=slots,
            process=process,
            imds=imds,
            log_path=log_path,
        )

    def _node_env(self, imds: ImdsEmulator, slots: int, instance_id: str) -> dict[str, str]:
        # Nothing of the caller's real AWS configuration may leak into a node.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIAL,
                "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIAL,
                ENV_IMDS_ENDPOINT: imds.endpoint,
                ENV_MAX_SLOTS: str(slots),
                ENV_WORK_DIR: str(self.work_root / instance_id),
                ENV_CACHE_DIR: str(self.work_root / "cache"),
                "PYTHONUNBUFFERED": "1",
                # The node dies with this process, even by SIGKILL (proctree.die_with_parent).
                proctree.ENV_PARENT_PID: str(os.getpid()),
            }
        )
        if os.geteuid() == 0:
            # A developer's machine, not a node: no work user exists, and their interpreter may
            # sit under /root. A node as root never runs a command as root (command.work_user).
            env[LOCAL_ROOT_ENV] = "1"
        if self.slots_per_node:
            env[ENV_SLOTS] = str(self.slots_per_node)
        env.update(self.settings.as_env())
        env.update(self.env)
        if self.iam is not None:
            env.update(self.iam.node_env())
        return env

    def _end_terminated(self, live: set[str]) -> None:
        """An instance terminated from outside ends its node (EC2 powers it off). ``live`` is
        ``_discover``'s listing of live instances: no request of its own."""
        with self._lock:
            known = [h.instance_id for h in self._handles.values() if h.running]
            known += list(self._waiting)
        gone = [iid for iid in known if iid not in live]
        now = time.monotonic()
        for iid in gone:
            with self._lock:
                self._waiting.pop(iid, None)
                handle = self._handles.get(iid)
            if handle is None or not handle.running:
                continue
            # An agent terminates its own instance as its last act and exits at once: only a
            # node still running TERMINATED_GRACE_SECONDS later was powered off from outside.
            seen = self._terminated_seen.setdefault(iid, now)
            if now - seen >= TERMINATED_GRACE_SECONDS:
                handle.killed_pids.extend(proctree.kill_tree(handle.pid))
                LOGGER.info("local node %s: its instance was terminated", iid)

    def _reap_finished(self) -> None:
        with self._lock:
            ended = [h for h in self._handles.values() if not h.finished and not h.running]
        for handle in ended:
            self._reap(handle)

    def _reap(self, handle: NodeHandle) -> None:
        """After the agent exits: no stray worker, IMDS closed, instance terminated."""
        handle.process.wait()
        for pid in proctree.group_members(handle.pid):
            handle.killed_pids.extend(proctree.kill_tree(pid))
        with self._lock:
            if handle.finished:
                return
            handle.finished = True
        handle.imds.close()
        self._terminate([handle.instance_id])
        LOGGER.info(
            "local node %s ended with status %s", handle.instance_id, handle.process.returncode
        )

    def _terminate(self, instance_ids: list[str]) -> None:
        if not instance_ids:
            return
        try:
            self._ec2.terminate_instances(InstanceIds=instance_ids)
        except (ClientError, BotoCoreError) as exc:
            LOGGER.warning("could not terminate %s: %s", ", ".join(instance_ids), exc)
