"""The node's lifecycle: identity → token → run the unit → report → terminate itself.

Every path ends with ``TerminateInstances`` on this instance (success, failure, interruption,
supersession, crash), so no node outlives its unit. Reports go through the attempt's task
token and only while the attempt is current; a superseded node never reports.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from node_agent import logs
from node_agent.config import AgentConfig, resolve_slots
from node_agent.identity import (
    META,
    IdentityError,
    ImdsClient,
    ImdsError,
    NodeIdentity,
    resolve_identity,
)
from node_agent.inputs import stage_inputs
from node_agent.interruption import InterruptionWatcher, Notice
from node_agent.liveness import Heartbeat, heartbeat_interval
from node_agent.runner import EventPump, ShardPool
from node_agent.shutdown import Shutdown, StopCause
from node_agent.unit_run import UnitReport, UnitRun
from workflow.attempt import UnitAttempt
from workflow.aws.services import Services
from workflow.errors import BundleInvalid, MissionNotFound, NodeLost, ShardFailed, SpotInterrupted
from workflow.params import MissionParams
from workflow.ports import MissionStore
from workflow.records import MissionRecord, ShardRecord, UnitRecord
from workflow.states import SETTLED_SHARD, ShardStatus

MAX_CAUSE_SHARDS: Final = 5
log = logs.get_logger("agent")


class ExitCode(IntEnum):
    """The agent's exit status says which path it took (visible in the local pool's handles)."""

    SUCCEEDED = 0
    CRASHED = 1
    NO_IDENTITY = 2
    SHARD_FAILED = 3
    INTERRUPTED = 4
    SUPERSEDED = 5
    LOST = 6


def failure_cause(failed: Sequence[ShardRecord]) -> str:
    """``Shard.Failed`` cause: which shards and why (the stderr tail rides in ``error``)."""
    parts = [f"shard {s.shard_id}: {s.error or 'failed'}" for s in failed[:MAX_CAUSE_SHARDS]]
    more = len(failed) - MAX_CAUSE_SHARDS
    if more > 0:
        parts.append(f"... and {more} more failed shard(s)")
    return f"{len(failed)} shard(s) failed. " + " | ".join(parts)


class NodeAgent:
    def __init__(
        self,
        svc: Services,
        imds: ImdsClient,
        config: AgentConfig,
        *,
        cpu_count: int | None = None,
    ) -> None:
        self.svc = svc
        self.imds = imds
        self.config = config
        self.cpu_count = cpu_count or os.cpu_count()
        self.shutdown = Shutdown()
        self._began = time.monotonic()
        self._token: str | None = None
        self._threads: list[Heartbeat | InterruptionWatcher | threading.Timer] = []
        self._bytes_downloaded = 0
        self._release: Callable[[], None] = _nothing  # the unit's workers and files, once run

    # ---- entry ---------------------------------------------------------------------------

    def on_sigterm(self) -> None:
        """SIGTERM is a warm shutdown, exactly like a Spot notice.

        Called from the signal handler, which runs on the main thread between two bytecodes,
        possibly while that thread holds a lock ``request`` needs: hand it to a thread.
        """
        threading.Thread(
            target=self.shutdown.request,
            args=(StopCause.INTERRUPTED, "SIGTERM received"),
            name="sigterm",
            daemon=True,
        ).start()

    def run(self) -> int:
        try:
            ident = resolve_identity(self.imds, self.svc.ec2)
        except (IdentityError, ImdsError, ClientError, BotoCoreError) as exc:
            log.error("cannot tell which unit this node runs", extra={"error": str(exc)})
            self._terminate_unknown()
            return ExitCode.NO_IDENTITY
        logs.bind(
            missionId=ident.mission_id,
            unitId=ident.unit_id,
            attempt=ident.attempt,
            instanceId=ident.instance_id,
        )
        log.info("node agent started", extra={"instanceType": ident.instance_type})
        try:
            code = self._run_attempt(ident)
        except Exception as exc:  # last resort: Node.Lost now beats waiting for heartbeat expiry
            log.exception("node agent crashed")
            self._stop_threads()
            self._report_failure(NodeLost.error_name, f"node agent crashed: {exc!r}")
            code = ExitCode.CRASHED
        finally:
            self._stop_threads()
            self._release()
            self._bill(ident)
            self._terminate_self(ident.instance_id)
        log.info("node agent exiting", extra={"exitCode": int(code), "path": ExitCode(code).name})
        return int(code)

    def _bill(self, ident: NodeIdentity) -> None:
        """Add this node's run time to the mission's instance-seconds (priced by RsltProc)."""
        seconds = time.monotonic() - self._began
        try:
            capacity = (self.imds.get(META + "instance-life-cycle") or "on-demand").strip()
            self.svc.store.bill_instance(
                ident.mission_id, ident.instance_id, ident.instance_type, capacity, seconds
            )
        except (ClientError, BotoCoreError, ImdsError, MissionNotFound) as exc:
            log.warning("instance seconds not recorded", extra={"error": str(exc)})

    # ---- the attempt ---------------------------------------------------------------------

    def _run_attempt(self, ident: NodeIdentity) -> ExitCode:
        store = self.svc.store
        unit = store.get_unit(ident.mission_id, ident.unit_id)
        if unit.attempt != ident.attempt or not unit.task_token:
            log.warning("attempt superseded before start", extra={"currentAttempt": unit.attempt})
            return ExitCode.SUPERSEDED
        token = self._token = unit.task_token
        mission = store.get_mission(ident.mission_id)
        params = mission.mission_params()
        self._start_threads(params, token)  # the first heartbeat goes out now, at boot
        if not _attempt_of(store, ident).start(ident.instance_id):
            log.warning("attempt superseded before start")
            return ExitCode.SUPERSEDED
        try:
            report = self._run_shards(ident, unit, params, mission)
        except BundleInvalid as exc:  # other bytes than pinned, or requirements not on the node
            return self._refuse_bundle(ident, exc)
        # The stop cause is final now, but the heartbeat goes on until the report: reading a
        # unit of thousands of shards back may outlast heartbeatSeconds (run() stops it).
        self._stop_threads(keep=Heartbeat)
        return self._conclude(ident, unit, report)

    def _run_shards(
        self,
        ident: NodeIdentity,
        unit: UnitRecord,
        params: MissionParams,
        mission: MissionRecord,
    ) -> UnitReport:
        attempt = _attempt_of(self.svc.store, ident)
        work_dir = self.config.work_dir / f"{ident.mission_id}-{ident.unit_id}-a{ident.attempt:03d}"
        slots = resolve_slots(
            self.config.slots, params.slots_per_node, self.cpu_count, self.config.max_slots
        )
        pool = ShardPool(min(slots, unit.shard_to - unit.shard_from + 1))
        pool.warm()  # the workers start while the inputs are staged
        try:
            staged = stage_inputs(
                self.svc.objects,
                mission.sample,
                params,
                work_dir,
                self.config.library_cache,
                library=mission.library,
                bundle=mission.bundle,
            )
            shards = attempt.shards_to_run(unit)
        except BaseException:  # a refused bundle, or no answer: no worker outlives the agent
            pool.close()
            shutil.rmtree(work_dir, ignore_errors=True)
            raise
        self._bytes_downloaded = staged.bytes_downloaded
        log.info(
            "running unit",
            extra={
                "shards": len(shards),
                "slots": pool.slots,
                "libraryCached": staged.library_cached,
            },
        )
        self.shutdown.set_on_stop(pool.request_stop)
        run = UnitRun(
            svc=self.svc,
            ident=ident,
            attempt=attempt,
            params=params,
            inputs=staged.inputs,
            pool=pool,
            shutdown=self.shutdown,
            work_dir=work_dir / "shards",
            progress_seconds=self.config.progress_seconds,
            stop_grace_seconds=self.config.stop_grace_seconds,
        )
        pump = EventPump(pool, run.on_event)
        pump.start()
        # The workers and the work directory go after the report (run's end): closing the
        # pool waits for every worker to exit, ~0.3 s the mission need not wait for.
        self._release = functools.partial(_release_unit, pool, work_dir)
        try:
            report = run.run(shards)
        finally:
            pump.stop()
            pump.join()
        for shard_id, (key, position) in list(report.stopped.items()):
            if key is None:  # a periodic checkpoint may have been the last one uploaded
                report.stopped[shard_id] = (run.uploader.latest(shard_id)[0], position)
        for shard_id in report.abandoned:  # did not stop in time: its last periodic checkpoint
            key, position = run.uploader.latest(shard_id)
            if key is not None:
                report.stopped[shard_id] = (key, position)
        return report

    # ---- the end -------------------------------------------------------------------------

    def _refuse_bundle(self, ident: NodeIdentity, exc: BundleInvalid) -> ExitCode:
        """Fail the unit with ``Bundle.Invalid``: not retried, another node would read the
        same bytes; RecordUnitFailure fails its shards with this cause."""
        self._stop_threads()
        cause = f"{BundleInvalid.error_name}: {exc}"
        log.error("bundle refused", extra={"error": str(exc)})
        if not _attempt_of(self.svc.store, ident).fail(cause):
            return ExitCode.SUPERSEDED
        self._report_failure(BundleInvalid.error_name, cause)
        return ExitCode.SHARD_FAILED

    def _conclude(self, ident: NodeIdentity, unit: UnitRecord, report: UnitReport) -> ExitCode:
        if self.shutdown.superseded:
            log.warning("superseded: no report", extra={"why": self.shutdown.detail})
            return ExitCode.SUPERSEDED
        not_done = self.svc.store.unit_shards_not_done(unit)
        open_shards = [s for s in not_done if s.status not in SETTLED_SHARD]
        if not open_shards:
            return self._finished(ident, unit, not_done, report)
        if any(s.attempt != ident.attempt for s in open_shards):
            log.warning("superseded: a later attempt owns some shards; no report")
            return ExitCode.SUPERSEDED
        if self.shutdown.cause in (StopCause.INTERRUPTED, StopCause.LIFETIME):
            return self._interrupted(ident, open_shards, report)
        cause = f"unit incomplete: {', '.join(s.shard_id for s in open_shards)} not finished"
        log.error(cause)
        self._report_failure(NodeLost.error_name, cause)
        return ExitCode.LOST

    def _finished(
        self,
        ident: NodeIdentity,
        unit: UnitRecord,
        not_done: Sequence[ShardRecord],
        report: UnitReport,
    ) -> ExitCode:
        failed = [s for s in not_done if s.status is ShardStatus.FAILED]
        attempt = _attempt_of(self.svc.store, ident)
        if failed:
            cause = failure_cause(failed)
            if not attempt.fail(cause):
                return ExitCode.SUPERSEDED
            self._report_failure(ShardFailed.error_name, cause)
            return ExitCode.SHARD_FAILED
        if not attempt.succeed():
            log.warning("superseded at the finish line; no report")
            return ExitCode.SUPERSEDED
        summary = self._summary(ident, unit, report)
        if self._token and self.svc.tokens.report_success(self._token, summary):
            log.info("unit succeeded", extra={"summary": summary})
        else:
            log.warning("success not delivered: the token is no longer live")
        return ExitCode.SUCCEEDED

    def _interrupted(
        self, ident: NodeIdentity, open_shards: Sequence[ShardRecord], report: UnitReport
    ) -> ExitCode:
        attempt = _attempt_of(self.svc.store, ident)
        for shard in open_shards:
            key, position = report.stopped.get(shard.shard_id, (None, None))
            if not attempt.interrupt_shard(shard.shard_id, key, position):
                log.warning("superseded while interrupting", extra={"shardId": shard.shard_id})
                return ExitCode.SUPERSEDED
        detail = self.shutdown.detail
        if self.shutdown.cause is StopCause.LIFETIME:
            attempt.lose()
            self._report_failure(NodeLost.error_name, detail)
            return ExitCode.LOST
        attempt.interrupt(detail)
        self._report_failure(SpotInterrupted.error_name, detail)
        return ExitCode.INTERRUPTED

    def _summary(self, ident: NodeIdentity, unit: UnitRecord, report: UnitReport) -> dict[str, Any]:
        return {
            "unitId": ident.unit_id,
            "attempt": ident.attempt,
            "instanceId": ident.instance_id,
            "instanceType": ident.instance_type,
            "shards": unit.shard_to - unit.shard_from + 1,
            "shardsRun": len(report.done),
            "shardsResumed": len(report.resumed),
            "redoItems": report.redo_items,
            "nodeSeconds": round(time.monotonic() - self._began, 3),
            "shardSeconds": round(report.shard_seconds, 3),
            "bytesDownloaded": self._bytes_downloaded,
            "bytesUploaded": report.result_bytes,
        }

    # ---- threads, reports, termination ---------------------------------------------------

    def _start_threads(self, params: MissionParams, token: str) -> None:
        beat = Heartbeat(
            self.svc.tokens,
            token,
            heartbeat_interval(params.heartbeat_seconds),
            self._token_gone,
        )
        watch = InterruptionWatcher(self.imds, self.config.poll_seconds, self._on_notice)
        remaining = self.svc.settings.node_max_lifetime_seconds - (time.monotonic() - self._began)
        lifetime = threading.Timer(
            max(0.0, remaining),
            lambda: self.shutdown.request(StopCause.LIFETIME, "max lifetime reached"),
        )
        lifetime.daemon = True
        self._threads = [beat, watch, lifetime]
        for thread in self._threads:
            thread.start()

    def _token_gone(self) -> None:
        self.shutdown.request(StopCause.SUPERSEDED, "task token no longer live")

    def _on_notice(self, notice: Notice) -> None:
        self.shutdown.request(StopCause.INTERRUPTED, notice.describe())

    def _stop_threads(self, keep: type[threading.Thread] | None = None) -> None:
        stopping = [t for t in self._threads if keep is None or not isinstance(t, keep)]
        for thread in stopping:
            if isinstance(thread, threading.Timer):
                thread.cancel()
            else:
                thread.stop()
        for thread in stopping:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=5)
        self._threads = [t for t in self._threads if t not in stopping]

    def _report_failure(self, error: str, cause: str) -> None:
        if self.shutdown.superseded or not self._token:
            return
        try:
            delivered = self.svc.tokens.report_failure(self._token, error, cause)
        except (ClientError, BotoCoreError) as exc:
            log.error("could not report failure", extra={"error": str(exc)})
            return
        log.warning(
            "reported failure" if delivered else "failure not delivered: token no longer live",
            extra={"errorName": error, "cause": cause[-2000:]},
        )

    def _terminate_self(self, instance_id: str) -> None:
        try:
            self.svc.ec2.terminate_instances(InstanceIds=[instance_id])
        except (ClientError, BotoCoreError) as exc:
            log.error("could not terminate this instance", extra={"error": str(exc)})
            return
        log.info("instance terminated", extra={"instanceId": instance_id})

    def _terminate_unknown(self) -> None:
        """Without tags the node cannot work; if IMDS still names it, it ends itself."""
        with contextlib.suppress(ImdsError):
            instance_id = self.imds.get(META + "instance-id")
            if instance_id:
                self._terminate_self(instance_id.strip())


def _release_unit(pool: ShardPool, work_dir: Path) -> None:
    """Stop the unit's workers; results and checkpoints are in S3 by now, so only the shared
    library cache stays on disk."""
    pool.close()
    shutil.rmtree(work_dir, ignore_errors=True)


def _nothing() -> None:
    return None


def _attempt_of(store: MissionStore, ident: NodeIdentity) -> UnitAttempt:
    """The protocol object of the attempt this node was launched for (its instance tags)."""
    return UnitAttempt(store, ident.mission_id, ident.unit_id, ident.attempt)
