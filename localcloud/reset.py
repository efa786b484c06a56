"""Bring a deployed ``LocalStack`` back to the state ``deploy()`` left it in, in well under a
second instead of the ten-odd seconds of a fresh cloud and deployment.

``reset`` stops what is still running, then forgets what a mission left behind: executions,
instances, table items, objects (every version), notices, node log streams. It keeps what
``deploy`` created (buckets, tables, queue, topic, log group, functions, state machine,
launch template, rule) and repeats ``wire``: the handlers, the enabled S3 rule and the
default profile come back as deployed.

Most of it goes through the AWS APIs. Three things the APIs cannot do are done in moto's
backends (moto ``5.2.5``, ``localcloud.moto_compat.MOTO_VERSION_PINNED``): forget finished
executions (``StateMachine.executions``), forget terminated instances (``reservations``, fleets,
Spot requests) and purge the queue again within SQS's 60 seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Final

from localcloud import moto_compat
from localcloud.sfn_mock_config import MOCK_CONFIG_WIRING
from localcloud.stack import Handler, LocalStack, local_services, wire
from workflow.settings import Settings

QUIET_TIMEOUT_SECONDS: Final = 30.0
# Fields that name a deployed resource: a reset cannot rename what deploy() created.
RESOURCE_FIELDS: Final = (
    "mission_table",
    "trans_table",
    "source_bucket",
    "result_bucket",
    "topic_arn",
    "launch_template",
)
_WIPE_ROUNDS: Final = 3
_BATCH_WRITE_MAX: Final = 25
_DELETE_OBJECTS_MAX: Final = 1000


class ResetError(RuntimeError):
    """The stack could not be brought back to its deployed state (e.g. it never went quiet)."""


def reset(
    cloud: Any,
    stack: LocalStack,
    *,
    handlers: Mapping[str, Handler] | None = None,
    settings: Settings | None = None,
    timeout: float = QUIET_TIMEOUT_SECONDS,
) -> LocalStack:
    """Make ``stack`` as freshly deployed and return it.

    ``handlers`` (keyed like ``localcloud.stack.FUNCTIONS``) replace deployed handlers until
    the next reset, which waits for their calls under way (a handler registered by hand is
    not waited for). ``settings`` changes the knobs the handlers read (e.g.
    ``max_concurrent_nodes``) until the next reset; the returned stack carries them. Renaming
    a resource is refused.
    """
    fresh = stack if settings is None else _with_settings(cloud, stack, settings)
    _stop_executions(cloud, stack, timeout)
    for _ in range(_WIPE_ROUNDS):
        started = _IN_FLIGHT.started
        _forget_executions(cloud)
        _forget_instances(cloud, stack.services.ec2)
        for bucket in (stack.settings.source_bucket, stack.settings.result_bucket):
            _empty_bucket(stack.services.s3, bucket)
        for table in (stack.settings.mission_table, stack.settings.trans_table):
            _empty_table(stack.services.ddb, table)
        _purge_queue(cloud, stack.notice_queue_url)
        _empty_log_group(cloud, stack.settings.node_log_group)
        _wait_idle(cloud, timeout)
        if _IN_FLIGHT.started == started:  # no late call wrote during the wipe
            break
    else:
        raise ResetError(f"handlers kept being called during {_WIPE_ROUNDS} wipes")
    _reapply_fixes(cloud)
    chosen = {**stack.handlers, **(handlers or {})}
    wire(cloud, fresh, {key: _IN_FLIGHT.track(handler) for key, handler in chosen.items()})
    return fresh


def _with_settings(cloud: Any, stack: LocalStack, settings: Settings) -> LocalStack:
    renamed = [f for f in RESOURCE_FIELDS if getattr(settings, f) != getattr(stack.settings, f)]
    if renamed:
        raise ValueError(f"reset cannot rename deployed resources: {', '.join(renamed)}")
    return dataclasses.replace(stack, settings=settings, services=local_services(cloud, settings))


# ----------------------------------------------------------------------- Step Functions
class _InFlight:
    """Counts handler calls under way. A stopped execution's threads linger in moto (a Map
    waits for iterations that will never run) but start no new state; the one that was
    already calling a handler finishes that call, and its writes must land before the wipe.
    """

    def __init__(self) -> None:
        self._calls = 0
        self._started = 0
        self._changed = threading.Condition()

    @property
    def started(self) -> int:
        with self._changed:
            return self._started

    def track(self, handler: Handler) -> Handler:
        @functools.wraps(handler)
        def tracked(event: dict[str, Any], context: Any) -> Any:
            with self._changed:
                self._calls += 1
                self._started += 1
            try:
                return handler(event, context)
            finally:
                with self._changed:
                    self._calls -= 1
                    self._changed.notify_all()

        return tracked

    def wait_idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._calls == 0, timeout)


_IN_FLIGHT = _InFlight()  # one EmbeddedCloud per process: one count


def _stop_executions(cloud: Any, stack: LocalStack, timeout: float) -> None:
    """Stop running executions, then wait for the handler calls they had under way."""
    sfn = stack.services.sfn
    for machine in _state_machine_arns(sfn):
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine, statusFilter="RUNNING"
        ):
            for execution in page["executions"]:
                _stop(sfn, execution["executionArn"])
    _wait_idle(cloud, timeout)


def _wait_idle(cloud: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    idle = _IN_FLIGHT.wait_idle(timeout)
    if not (idle and cloud.lambdas.wait_for_async(max(0.0, deadline - time.monotonic()))):
        raise ResetError(f"Lambda handlers were still running after {timeout:g}s")


def _state_machine_arns(sfn: Any) -> Iterator[str]:
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            yield str(machine["stateMachineArn"])


def _stop(sfn: Any, execution_arn: str) -> None:
    with contextlib.suppress(sfn.exceptions.ClientError):  # it may have ended in between
        sfn.stop_execution(executionArn=execution_arn)


def _forget_executions(cloud: Any) -> None:
    """No API deletes an execution; ``ListExecutions`` must show only the next test's."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    for backend in _backends(stepfunctions_parser_backends, cloud.region):
        for machine in backend.state_machines:
            machine.executions.clear()


# -------------------------------------------------------------------------------- EC2
def _forget_instances(cloud: Any, ec2: Any) -> None:
    """Terminate every instance (releasing its volumes and interfaces), then forget it: a
    terminated instance stays listed for ever in moto, and in AWS for an hour."""
    from moto.ec2.models import ec2_backends

    running = [
        instance["InstanceId"]
        for page in ec2.get_paginator("describe_instances").paginate()
        for reservation in page["Reservations"]
        for instance in reservation["Instances"]
        if instance["State"]["Name"] != "terminated"
    ]
    if running:
        ec2.terminate_instances(InstanceIds=running)
    for backend in _backends(ec2_backends, cloud.region):
        backend.reservations.clear()
        backend.fleets.clear()
        backend.spot_instance_requests.clear()


# ------------------------------------------------------------------------- data stores
def _empty_bucket(s3: Any, bucket: str) -> None:
    """Delete every version and delete marker, and abort unfinished multipart uploads."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in (*page.get("Versions", []), *page.get("DeleteMarkers", []))
        ]
        for start in range(0, len(doomed), _DELETE_OBJECTS_MAX):
            s3.delete_objects(
                Bucket=bucket,
                Delete={"Objects": doomed[start : start + _DELETE_OBJECTS_MAX], "Quiet": True},
            )
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def _empty_table(ddb: Any, table: str) -> None:
    key_names = [
        k["AttributeName"] for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]
    ]
    keys = [
        {name: item[name] for name in key_names}
        for page in ddb.get_paginator("scan").paginate(
            TableName=table,
            ProjectionExpression=", ".join(f"#{i}" for i in range(len(key_names))),
            ExpressionAttributeNames={f"#{i}": name for i, name in enumerate(key_names)},
        )
        for item in page["Items"]
    ]
    for start in range(0, len(keys), _BATCH_WRITE_MAX):
        requests = [
            {"DeleteRequest": {"Key": key}} for key in keys[start : start + _BATCH_WRITE_MAX]
        ]
        while requests:
            resp = ddb.batch_write_item(RequestItems={table: requests})
            requests = resp.get("UnprocessedItems", {}).get(table, [])


def _empty_log_group(cloud: Any, group: str) -> None:
    if not group:
        return
    logs = cloud.client("logs")
    for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=group):
        for stream in page.get("logStreams", []):
            logs.delete_log_stream(logGroupName=group, logStreamName=stream["logStreamName"])


def _purge_queue(cloud: Any, queue_url: str) -> None:
    """PurgeQueue, without the 60 seconds AWS (and moto) require between two purges."""
    from moto.sqs.models import sqs_backends

    name = queue_url.rstrip("/").rsplit("/", 1)[-1]
    for backend in _backends(sqs_backends, cloud.region):
        if name in backend.queues:
            backend.queues[name].last_purged_at = None
            backend.purge_queue(name)


# ------------------------------------------------------------------------ process state
def _reapply_fixes(cloud: Any) -> None:
    """A test may revert a compatibility fix or the Lambda dispatch to show the bug: put
    back what the cloud installed at start."""
    if cloud.apply_compat:
        for fix in (*moto_compat.FIXES, MOCK_CONFIG_WIRING):
            if not fix.is_applied() and fix.applies():
                fix.apply()
    if not cloud.lambdas.installed:
        cloud.lambdas.install()


def _backends(backend_dict: Any, region: str) -> Iterator[Any]:
    """The region's backend in every account moto has created one for (``in`` would also
    answer True for a region moto has not created yet, and indexing would create it)."""
    for regions in list(backend_dict.values()):
        yield from (backend for name, backend in list(regions.items()) if name == region)
