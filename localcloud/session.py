"""A local mission from start to finish: emulator + stack + node pool, then cleanly nothing.

``LocalSession`` owns every resource it starts (moto server thread, node processes, IMDS
emulators) and releases all of them on exit, whatever the exit path (success, failure,
Ctrl-C), so no port or process outlives it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from localcloud.chaos import ChaosMonkey, ChaosSpec
from localcloud.emulator import EmbeddedCloud
from localcloud.execution_events import EndedExecutionEvents
from localcloud.fleet_errors import FleetErrors
from localcloud.heap import FrozenHeap
from localcloud.moto_compat import FAULTS
from localcloud.outputs import register_outputs
from localcloud.pool import DEFAULT_BOOT_SECONDS, LocalNodePool, node_capacity
from localcloud.stack import FUNCTIONS, SOURCE_RULE_NAME, LocalStack, deploy
from workflow.budget import spend_of
from workflow.bundles import BundleManifest, inspect_bundle, pack_directory
from workflow.errors import BundleInvalid, LightHpcError, MissionInvalidInput
from workflow.params import LOCAL_MIN_HEARTBEAT_SECONDS, LOCAL_RUN_HEARTBEAT_SECONDS, parse_params
from workflow.progress import NO_PACE, Pace, pace_of, progress_of
from workflow.records import MissionRecord
from workflow.settings import Settings
from workflow.stack_outputs import NODE_LOG_DIR
from workflow.states import TERMINAL_EXECUTION

METRICS_DISABLED_ENV = "POWERTOOLS_METRICS_DISABLED"
IAM_REPORT_ENV = "LIGHTHPC_LOCAL_IAM_REPORT"  # a file: the IAM call matrix, written at close
# Local shards last seconds, not minutes: look for Spot notices and write progress more often.
LOCAL_NODE_ENV = {"LIGHTHPC_NODE_POLL_SECONDS": "0.5", "LIGHTHPC_NODE_PROGRESS_SECONDS": "0.5"}
LOCAL_DEFAULTS: Mapping[str, Any] = {"heartbeatSeconds": LOCAL_RUN_HEARTBEAT_SECONDS}
# The progress bar: the end of an execution is seen within POLL_SECONDS; counting the shards
# (a read of every shard item) waits this many times its own cost before it runs again.
POLL_SECONDS = 0.25
PROGRESS_COST_RATIO = 9.0
SAMPLE_PREFIX = "incoming/"
BUNDLE_PREFIX = "bundles/"  # not under incoming/: uploading a bundle must start no mission
LIBRARY_PREFIX = "libraries/"


class LocalRunError(LightHpcError):
    error_name = "Local.RunError"


@dataclass
class MissionRequestLocal:
    """What ``lighthpc local run`` was asked to do (validated before anything starts)."""

    sample: Path
    workload: str = "molsim"
    library: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)
    workers: int = 2
    chaos: ChaosSpec = field(default_factory=ChaosSpec)
    boot_seconds: float = DEFAULT_BOOT_SECONDS
    bundle: Path | None = None  # a directory (archived here) or a .zip/.tar.gz
    bundle_archive: Path | None = field(default=None, init=False)
    _packed: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    def validate(self) -> None:
        if not self.sample.is_file():
            raise MissionInvalidInput(f"sample file not found: {self.sample}")
        if self.sample.stat().st_size == 0:  # PlanMission would refuse it; say so before a stack
            raise MissionInvalidInput(f"sample {self.sample} is empty")
        manifest = self._check_bundle() if self.bundle is not None else None
        if self.library is not None and not self.library.is_file():
            raise MissionInvalidInput(f"library file not found: {self.library}")
        if self.workers < 1:
            raise MissionInvalidInput(f"--workers must be >= 1, got {self.workers}")
        if self.boot_seconds < 0:
            raise MissionInvalidInput(f"--boot-seconds must be >= 0, got {self.boot_seconds}")
        bundled: dict[str, Any] = {}
        if manifest is not None:  # the URI is known after the upload; its shape is all we check
            bundled = {**manifest.mission_params(), "bundle": f"s3://source/{BUNDLE_PREFIX}x"}
        parse_params(  # the same validation PlanMission applies
            self.profile(),
            bundled,
            self.params,
            min_heartbeat_seconds=LOCAL_MIN_HEARTBEAT_SECONDS,
        )

    def _check_bundle(self) -> BundleManifest:
        """Archive a directory, then verify the archive as PlanMission and the nodes will:
        a hostile bundle is refused here, before the emulator starts."""
        assert self.bundle is not None
        try:
            if self.bundle.is_dir():
                self._packed = tempfile.TemporaryDirectory(prefix="lighthpc-bundle-")
                name = f"{self.bundle.resolve().name or 'bundle'}.tar.gz"
                self.bundle_archive = pack_directory(self.bundle, Path(self._packed.name) / name)
            elif self.bundle.is_file():
                self.bundle_archive = self.bundle
            else:
                raise MissionInvalidInput(f"bundle not found: {self.bundle}")
            manifest = inspect_bundle(self.bundle_archive).manifest
        except BundleInvalid as exc:
            raise MissionInvalidInput(f"bundle {self.bundle}: {exc}") from exc
        if "argv" in self.params:
            raise MissionInvalidInput("--param argv: a bundle names its program in its manifest")
        return manifest

    def profile(self) -> dict[str, Any]:
        workload = "command" if self.bundle is not None else self.workload
        return {**LOCAL_DEFAULTS, "workload": workload, "maxNodes": self.workers}


@dataclass
class Progress:
    shards: int
    done: int
    failed: int
    nodes: int
    retries: int
    interruptions: int
    status: str
    pace: Pace = NO_PACE
    spent_usd: float = 0.0
    max_cost_usd: float | None = None


class LocalSession:
    """Emulator, stack and node pool; a context manager that always cleans up."""

    def __init__(
        self,
        *,
        workers: int = 2,
        log_dir: Path | None = None,
        boot_seconds: float = DEFAULT_BOOT_SECONDS,
        install_seconds: float = 0.0,
        iam: bool | None = None,
    ) -> None:
        """``boot_seconds`` and ``install_seconds``: the node start the pool models
        (``localcloud.pool``; ``REALISTIC_BOOT_SECONDS`` and ``MEASURED_INSTALL_SECONDS``
        are AWS's). ``iam``: enforce the deployed grants (default: on unless
        ``LIGHTHPC_LOCAL_IAM=0``)."""
        self.workers = workers
        self.boot_seconds = boot_seconds
        self.install_seconds = install_seconds
        self._own_log_dir = log_dir is None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="lighthpc-nodes-"))
        self.cloud = EmbeddedCloud(iam=iam)
        self.stack: LocalStack | None = None
        self.pool: LocalNodePool | None = None
        self.monkey: ChaosMonkey | None = None
        self.fleet_errors: FleetErrors | None = None
        self.execution_events: EndedExecutionEvents | None = None
        self._lambda_log: IO[str] | None = None
        self._saved_metrics_env: str | None = None
        self._heap = FrozenHeap()

    def __enter__(self) -> LocalSession:
        try:
            self._quiet_handlers()
            self.cloud.start()
            slots_per_node = max((os.cpu_count() or 2) // self.workers, 1)
            total_slots = max(os.cpu_count() or 2, self.workers)
            # The Map launches no more units than the pool can run: a queued node's
            # heartbeat clock would run while it waits for a slot.
            cap = node_capacity(total_slots, slots_per_node)
            self.stack = deploy(
                self.cloud,
                Settings(
                    max_concurrent_nodes=cap, min_heartbeat_seconds=LOCAL_MIN_HEARTBEAT_SECONDS
                ),
            )
            self.pool = LocalNodePool(
                self.stack.services,
                self.stack.settings,
                slots_per_node=slots_per_node,
                log_dir=self.log_dir,
                total_slots=total_slots,
                env=LOCAL_NODE_ENV,
                boot_seconds=self.boot_seconds,
                install_seconds=self.install_seconds,
                iam=self.cloud.iam,
            ).start()
            # The remote CLI (``lighthpc logs``) finds the node logs through this output.
            register_outputs(self.cloud, self.stack, extra={NODE_LOG_DIR: str(self.log_dir)})
            self.execution_events = EndedExecutionEvents(
                self.cloud.client("stepfunctions"),
                self.cloud.client("lambda"),
                self.stack.state_machine_arn,
                FUNCTIONS["node_watch"],
            ).start()
            self._heap.freeze()  # the stack is up: what lives now lives to close()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _quiet_handlers(self) -> None:
        """Lambda logs go to ``<log_dir>/lambdas.log``; EMF metrics are not printed locally."""
        from lambdas.runtime import route_logs

        self._saved_metrics_env = os.environ.get(METRICS_DISABLED_ENV)
        os.environ[METRICS_DISABLED_ENV] = "true"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._lambda_log = (self.log_dir / "lambdas.log").open("a", encoding="utf-8")
        route_logs(self._lambda_log)

    def _restore_handlers(self) -> None:
        import sys

        from lambdas.runtime import route_logs

        route_logs(sys.stdout)
        if self._lambda_log is not None:
            self._lambda_log.close()
            self._lambda_log = None
        if self._saved_metrics_env is None:
            os.environ.pop(METRICS_DISABLED_ENV, None)
        else:
            os.environ[METRICS_DISABLED_ENV] = self._saved_metrics_env

    def close(self) -> None:
        try:
            if self.monkey is not None:
                self.monkey.stop()
            if self.fleet_errors is not None:
                self.fleet_errors.uninstall()
            if self.execution_events is not None:
                self.execution_events.stop()
            if self.pool is not None:
                self.pool.close()
            self._write_iam_report()
            if self.cloud.running:
                self.cloud.stop()
        finally:
            self._heap.thaw()
            FAULTS.reset()
            self._restore_handlers()
            if self._own_log_dir:
                shutil.rmtree(self.log_dir, ignore_errors=True)

    def _write_iam_report(self) -> None:
        target = os.environ.get(IAM_REPORT_ENV)
        if not target or self.cloud.iam is None:
            return
        from localcloud.iam.report import render

        Path(target).write_text(render(self.cloud.iam.observed()), encoding="utf-8")

    @property
    def services(self) -> Any:
        assert self.stack is not None
        return self.stack.services

    def start_chaos(self, spec: ChaosSpec) -> None:
        assert self.pool is not None
        FAULTS.configure(conflict=spec.conflict, throttle=spec.throttle, seed=spec.seed)
        self.monkey = ChaosMonkey(spec, self.pool, self.services).start()
        if spec.capacity > 0:
            self.fleet_errors = FleetErrors(probability=spec.capacity, seed=spec.seed).install()

    # ---- starting missions -------------------------------------------------------------

    def upload_library(self, path: Path) -> str:
        key = LIBRARY_PREFIX + path.name
        bucket = self.services.settings.source_bucket
        self.services.s3.upload_file(str(path), bucket, key)
        return f"s3://{bucket}/{key}"

    def upload_bundle(self, path: Path) -> str:
        """Put a bundle archive in the source bucket (outside ``incoming/``: no trigger)."""
        key = BUNDLE_PREFIX + path.name
        bucket = self.services.settings.source_bucket
        self.services.s3.upload_file(str(path), bucket, key)
        return f"s3://{bucket}/{key}"

    def upload_sample(self, path: Path, *, trigger: bool) -> str:
        """Put the sample in the source bucket; with ``trigger`` the S3 rule starts a mission."""
        key = SAMPLE_PREFIX + path.name
        events = self.services.events
        if not trigger:
            events.disable_rule(Name=SOURCE_RULE_NAME)
        try:
            self.services.s3.upload_file(str(path), self.services.settings.source_bucket, key)
        finally:
            if not trigger:
                events.enable_rule(Name=SOURCE_RULE_NAME)
        return key

    def start_manual(self, key: str, params: Mapping[str, Any]) -> str:
        assert self.stack is not None
        payload = {
            "input": {"bucket": self.services.settings.source_bucket, "key": key},
            "params": dict(params),
        }
        resp = self.services.sfn.start_execution(
            stateMachineArn=self.stack.state_machine_arn, input=json.dumps(payload)
        )
        return str(resp["executionArn"])

    def redeliver_upload_event(self, key: str) -> None:
        """Send the S3 'Object Created' event for ``key`` again (chaos ``dup``)."""
        s3 = self.services.s3
        bucket = self.services.settings.source_bucket
        head = s3.head_object(Bucket=bucket, Key=key)
        detail = {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": head["ContentLength"],
                "etag": str(head["ETag"]).strip('"'),
                "version-id": head.get("VersionId"),
            },
            "reason": "PutObject",
        }
        self.services.events.put_events(
            Entries=[
                {"Source": "aws.s3", "DetailType": "Object Created", "Detail": json.dumps(detail)}
            ]
        )

    def executions(self) -> list[dict[str, Any]]:
        assert self.stack is not None
        resp = self.services.sfn.list_executions(stateMachineArn=self.stack.state_machine_arn)
        return sorted(resp["executions"], key=lambda e: e["startDate"])

    def wait_first_execution(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.executions()
            if found:
                return str(found[0]["executionArn"])
            time.sleep(0.1)
        raise LocalRunError(f"no execution started within {timeout:.0f} s of the upload")

    def owning_execution(self, first: str, timeout: float = 60.0) -> str:
        """The execution that owns the mission: with duplicate events several executions
        race through PlanMission and exactly one wins; the others end as DuplicateIgnored.
        A rejected input has no owner: then the first execution is the answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            executions = self.executions()
            for ex in executions:
                if self.mission_id(str(ex["executionArn"])) is not None:
                    return str(ex["executionArn"])
            if all(ex["status"] in TERMINAL_EXECUTION for ex in executions):
                return first
            time.sleep(0.1)
        raise LocalRunError(f"no execution planned a mission within {timeout:.0f} s")

    # ---- watching ----------------------------------------------------------------------

    def describe(self, arn: str) -> dict[str, Any]:
        return dict(self.services.sfn.describe_execution(executionArn=arn))

    def mission_id(self, arn: str) -> str | None:
        return self.services.store.mission_for_execution(arn)  # type: ignore[no-any-return]

    def progress(self, arn: str) -> Progress:
        status = self.describe(arn)["status"]
        mission_id = self.mission_id(arn)
        if mission_id is None:
            return Progress(0, 0, 0, 0, 0, 0, status)
        store = self.services.store
        units = store.list_units(mission_id)
        counts = progress_of(store.list_shards(mission_id), units)
        mission = store.get_mission(mission_id)
        now = time.time()
        assert self.pool is not None
        return Progress(
            shards=counts.shards,
            done=counts.done,
            failed=counts.failed,
            nodes=len(self.pool.nodes(mission_id=mission_id, running_only=True)),
            retries=counts.retries,
            interruptions=counts.interruptions,
            status=status,
            pace=pace_of(counts, (mission.finished_at or now) - mission.created_at),
            spent_usd=spend_of(mission, units, now).total,
            max_cost_usd=mission.mission_params().max_cost_usd,
        )

    def wait(
        self, arn: str, on_tick: Callable[[Progress], None], timeout: float = 3600.0
    ) -> dict[str, Any]:
        """Tick ``on_tick`` until the execution ends. Counting reads every shard item, so a
        count that took ``c`` seconds waits ``PROGRESS_COST_RATIO * c`` before the next: at
        10,000 shards the progress bar must not become the emulator's main load. The end is
        noticed within ``POLL_SECONDS`` (DescribeExecution costs the same at any size)."""
        deadline = time.monotonic() + timeout
        while True:
            counted = time.monotonic()
            snapshot = self.progress(arn)
            next_count = time.monotonic() + (time.monotonic() - counted) * PROGRESS_COST_RATIO
            on_tick(snapshot)
            status = snapshot.status
            while status not in TERMINAL_EXECUTION and time.monotonic() < next_count:
                time.sleep(POLL_SECONDS)
                status = self.describe(arn)["status"]
            if status in TERMINAL_EXECUTION:
                if snapshot.status not in TERMINAL_EXECUTION:
                    on_tick(self.progress(arn))  # the final counts
                return self.describe(arn)
            if time.monotonic() > deadline:
                raise LocalRunError(f"mission did not finish within {timeout:.0f} s")
            time.sleep(POLL_SECONDS)

    def download_result(self, mission: MissionRecord, out_dir: Path) -> Path | None:
        uri = mission.result
        if not uri:
            return None
        bucket, _, key = str(uri).removeprefix("s3://").partition("/")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / Path(key).name
        self.services.s3.download_file(bucket, key, str(target))
        return target
