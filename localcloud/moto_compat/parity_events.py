"""AWS-parity fixes for moto's EventBridge: state-machine targets and S3's event shape.

Together they carry an S3 upload to the state machine as on AWS (DESIGN §3.1): fixes 6a
and 6b of the package's list.
"""

from __future__ import annotations

import copy
import importlib
import itertools
import json
import logging
import threading
import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

from localcloud.moto_compat.machinery import Fix, Impl, Patch

LOGGER = logging.getLogger(__name__)


# --------------------------------------------- 6a. EventBridge -> Step Functions target


def _is_state_machine_target(target: dict[str, Any]) -> bool:
    parts = str(target.get("Arn", "")).split(":")
    return len(parts) >= 7 and parts[2] == "states" and parts[5] == "stateMachine"


def _iso_time(value: Any) -> Any:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _delivered_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge hands it to a target (ISO time, no moto-internal keys)."""
    delivered = {k: copy.deepcopy(v) for k, v in event.items() if k != "ingestion-time"}
    if "time" in delivered:
        delivered["time"] = _iso_time(delivered["time"])
    return delivered


def _target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """Apply the target's Input / InputPath / InputTransformer, else the whole event."""
    delivered = _delivered_event(event)
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        jsonpath = importlib.import_module("jsonpath_ng.ext")
        matches = jsonpath.parse(target["InputPath"]).find(delivered)
        return matches[0].value if matches else None
    transformer = target.get("InputTransformer")
    if transformer:
        utils = importlib.import_module("moto.events.utils")
        with_ingestion = {**delivered, "ingestion-time": event.get("ingestion-time", 0.0)}
        return utils.EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=with_ingestion,
        )
    return delivered


def _start_execution_for(target: dict[str, Any], event: dict[str, Any]) -> None:
    sfn_responses = importlib.import_module("moto.stepfunctions.responses")
    core_exceptions = importlib.import_module("moto.core.exceptions")
    arn = str(target["Arn"])
    parts = arn.split(":")
    backend = sfn_responses.get_backend(parts[4], parts[3])
    payload = json.dumps(_target_input(target, event))
    try:
        backend.start_execution(arn, str(uuid.uuid4()), payload)
    except core_exceptions.AWSError as exc:
        # EventBridge delivery is asynchronous on AWS: a failed target never fails PutEvents.
        LOGGER.warning("EventBridge could not start an execution of %s: %s", arn, exc)


def _wrap_send_to_targets(inner: Impl) -> Impl:
    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        """Deliver to Step Functions targets (moto raised NotImplementedError for them)."""
        targets = list(self.targets)
        sfn_targets = [t for t in targets if _is_state_machine_target(t)]
        if not sfn_targets:
            inner(self, original_event, transform_input)
            return
        others = [t for t in targets if not _is_state_machine_target(t)]
        if others:
            proxy = copy.copy(self)
            proxy.targets = others
            inner(proxy, original_event, transform_input)
        if self.state == "DISABLED" or not self.event_pattern.matches_event(original_event):
            return
        for target in sfn_targets:
            _start_execution_for(target, original_event)

    return send_to_targets


EVENTBRIDGE_SFN_TARGET = Fix(
    name="eventbridge_sfn_target",
    design_ref="DESIGN §6 (EventBridge rule -> Step Functions target)",
    description=(
        "An EventBridge rule target that is a state machine ARN starts an execution "
        "with the event (or its Input/InputPath/InputTransformer) as input."
    ),
    patches=(
        Patch(
            "moto.events.models:Rule",
            "send_to_targets",
            _wrap_send_to_targets,
            ("self", "original_event", "transform_input"),
        ),
    ),
)


# ----------------------------------------------- 6b. S3 -> EventBridge event shape

# moto event name -> (detail-type, reason, deletion-type)
_S3_EVENTS: Final[dict[str, tuple[str, str, str | None]]] = {
    "s3:ObjectCreated:Put": ("Object Created", "PutObject", None),
    "s3:ObjectCreated:Post": ("Object Created", "POST Object", None),
    "s3:ObjectCreated:Copy": ("Object Created", "CopyObject", None),
    "s3:ObjectCreated:CompleteMultipartUpload": (
        "Object Created",
        "CompleteMultipartUpload",
        None,
    ),
    "s3:ObjectRemoved:Delete": ("Object Deleted", "DeleteObject", "Permanently Deleted"),
    "s3:ObjectRemoved:DeleteMarkerCreated": (
        "Object Deleted",
        "DeleteObject",
        "Delete Marker Created",
    ),
}
_SEQUENCER_LOCK = threading.Lock()
_SEQUENCER = itertools.count(1)


def _next_sequencer() -> str:
    with _SEQUENCER_LOCK:
        return f"{next(_SEQUENCER):018X}"


def _s3_object_detail(bucket: Any, key: Any, detail_type: str) -> dict[str, Any]:
    detail: dict[str, Any] = {"key": key.name}
    if detail_type == "Object Created":
        detail["size"] = key.size
        detail["etag"] = str(key.etag).replace('"', "")
    if getattr(bucket, "versioning_status", None) and key.version_id:
        detail["version-id"] = key.version_id  # only buckets with versioning have one
    detail["sequencer"] = _next_sequencer()
    return detail


def _s3_eventbridge_event(
    account_id: str, bucket: Any, key: Any, kind: tuple[str, str, str | None]
) -> dict[str, Any]:
    detail_type, reason, deletion_type = kind
    core_utils = importlib.import_module("moto.core.utils")
    now = core_utils.unix_time()
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket.name},
        "object": _s3_object_detail(bucket, key, detail_type),
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": account_id,
        "source-ip-address": "127.0.0.1",
        "reason": reason,
    }
    if deletion_type is not None:
        detail["deletion-type"] = deletion_type
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": account_id,
        "time": now,  # moto's targets format the float themselves
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": detail,
    }


def _deliver_to_default_bus(account_id: str, region: str, event: dict[str, Any]) -> None:
    events_models = importlib.import_module("moto.events.models")
    core_exceptions = importlib.import_module("moto.core.exceptions")
    http_exceptions = importlib.import_module("werkzeug.exceptions")
    bus = events_models.events_backends[account_id][region].event_buses.get("default")
    for rule in list(bus.rules.values()) if bus is not None else []:
        try:
            rule.send_to_targets(event, transform_input=False)
        except (
            core_exceptions.ServiceException,
            http_exceptions.HTTPException,
            NotImplementedError,
        ) as exc:
            # Delivery is asynchronous on AWS: a failing target never fails the S3 call.
            LOGGER.warning("S3 event to EventBridge rule %s not delivered: %s", rule.name, exc)


def _wrap_s3_eventbridge(inner: Impl) -> Impl:
    def _send_event_bridge_message(account_id: str, bucket: Any, event_name: Any, key: Any) -> None:
        """Send Object Created/Deleted events in AWS's shape, to the default bus only.

        moto sent ``eTag`` (AWS: ``etag``), ``reason`` ``ObjectCreated`` (AWS:
        ``PutObject`` ...), ``version-id: null`` and one fixed event id for every event.
        """
        name = event_name.value if isinstance(event_name, Enum) else str(event_name)
        kind = _S3_EVENTS.get(name)
        if kind is None:
            inner(account_id, bucket, event_name, key)
            return
        event = _s3_eventbridge_event(account_id, bucket, key, kind)
        _deliver_to_default_bus(account_id, bucket.region_name, event)

    return _send_event_bridge_message


S3_EVENTBRIDGE_EVENT_SHAPE = Fix(
    name="s3_eventbridge_event_shape",
    design_ref="DESIGN §3.1 (S3 Object Created -> EventBridge)",
    description=(
        "S3 Object Created/Deleted events reach EventBridge in AWS's shape (detail.object."
        "etag/size/version-id/sequencer, reason PutObject, a UUID id per event)."
    ),
    patches=(
        Patch(
            "moto.s3.notifications",
            "_send_event_bridge_message",
            _wrap_s3_eventbridge,
            ("account_id", "bucket", "event_name", "key"),
        ),
    ),
)
