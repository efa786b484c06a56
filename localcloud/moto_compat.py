"""Guarded, reversible compatibility fixes for moto (pinned: ``MOTO_VERSION_PINNED``).

Each :class:`Fix` repairs one measured difference between moto's emulation and AWS
(DESIGN §6). A fix is a tuple of :class:`Patch` layers over moto attributes. Layers
compose in declaration order, so two fixes may wrap the same method and either can be
reverted on its own; the functional tests revert one fix at a time to prove the bug is
still in moto (and fail the day it is not, telling us to drop the fix).

Nothing is patched at import time: call :func:`apply_all` (``EmbeddedCloud`` does).
moto is imported lazily, so this module imports without the ``local`` extra installed.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import itertools
import json
import logging
import threading
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

LOGGER = logging.getLogger(__name__)

MOTO_VERSION_PINNED: Final = "5.2.5"

Impl = Callable[..., Any]
Wrapper = Callable[[Impl], Impl]


class MotoCompatWarning(UserWarning):
    """A compatibility fix could not be applied, or moto is not the pinned version."""


# --------------------------------------------------------------------------- machinery

_ORDER = itertools.count()
_MISSING: Final = object()
_LOCK = threading.RLock()


@dataclass(frozen=True)
class Patch:
    """One layer over ``<target>.<attribute>``; ``wrap(inner)`` returns the replacement.

    ``target`` is ``"package.module:Class"`` (or ``"package.module"`` for a module-level
    function). ``expected_params`` is the leading parameter names that the unpatched
    function must still have for the patch to be considered applicable.
    """

    target: str
    attribute: str
    wrap: Wrapper
    expected_params: tuple[str, ...] = ()
    order: int = field(default_factory=lambda: next(_ORDER), compare=False)

    def owner(self) -> Any:
        module_name, _, qualname = self.target.partition(":")
        owner: Any = importlib.import_module(module_name)
        for part in filter(None, qualname.split(".")):
            owner = getattr(owner, part)
        return owner

    def is_compatible(self) -> bool:
        """True when the target exists and still has the shape the patch was written for."""
        try:
            owner = self.owner()
        except (ImportError, AttributeError):
            return False
        impl = _pristine(owner, self.attribute)
        if impl is None:
            return False
        if not self.expected_params:
            return True
        names = tuple(inspect.signature(impl).parameters)
        return names[: len(self.expected_params)] == self.expected_params


@dataclass
class _Site:
    owner: Any
    attribute: str
    original: Any  # the value in owner.__dict__, or _MISSING when inherited
    layers: dict[int, Patch] = field(default_factory=dict)


_SITES: dict[tuple[int, str], _Site] = {}


def _own_value(owner: Any, attribute: str) -> Any:
    return vars(owner).get(attribute, _MISSING)


def _pristine(owner: Any, attribute: str) -> Impl | None:
    """The unpatched function behind ``owner.attribute`` (inherited ones included)."""
    site = _SITES.get((id(owner), attribute))
    value = site.original if site is not None else _own_value(owner, attribute)
    if value is _MISSING and inspect.isclass(owner):
        for klass in owner.__mro__[1:]:
            value = vars(klass).get(attribute, _MISSING)
            if value is not _MISSING:
                break
    return value if inspect.isfunction(value) else None


def _base_impl(site: _Site) -> Impl:
    if site.original is not _MISSING:
        return site.original  # type: ignore[no-any-return]
    owner, attribute = site.owner, site.attribute

    def inherited(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(super(owner, self), attribute)(*args, **kwargs)

    return inherited


def _rebuild(site: _Site) -> None:
    if not site.layers:
        if site.original is _MISSING:
            delattr(site.owner, site.attribute)
        else:
            setattr(site.owner, site.attribute, site.original)
        del _SITES[(id(site.owner), site.attribute)]
        return
    impl = _base_impl(site)
    for order in sorted(site.layers):
        impl = site.layers[order].wrap(impl)
    setattr(site.owner, site.attribute, impl)


def _is_installed(patch: Patch) -> bool:
    try:
        owner = patch.owner()
    except (ImportError, AttributeError):
        return False
    site = _SITES.get((id(owner), patch.attribute))
    return site is not None and patch.order in site.layers


def _install(patch: Patch) -> None:
    owner = patch.owner()
    key = (id(owner), patch.attribute)
    site = _SITES.get(key)
    if site is None:
        site = _Site(owner, patch.attribute, _own_value(owner, patch.attribute))
        _SITES[key] = site
    site.layers[patch.order] = patch
    _rebuild(site)


def _uninstall(patch: Patch) -> None:
    site = _SITES.get((id(patch.owner()), patch.attribute))
    if site is not None and site.layers.pop(patch.order, None) is not None:
        _rebuild(site)


@dataclass(frozen=True)
class Fix:
    """A named, reversible compatibility fix made of one or more patch layers."""

    name: str
    design_ref: str
    description: str
    patches: tuple[Patch, ...]

    def applies(self) -> bool:
        """True when every patched target still exists with the expected shape."""
        return all(patch.is_compatible() for patch in self.patches)

    def is_applied(self) -> bool:
        with _LOCK:
            return all(_is_installed(patch) for patch in self.patches)

    def apply(self) -> bool:
        """Install the fix; False (with a warning when it no longer fits) if not installed."""
        with _LOCK:
            if self.is_applied():
                return False
            if not self.applies():
                warnings.warn(
                    f"moto compatibility fix {self.name!r} ({self.design_ref}) was not applied: "
                    "the moto code it patches changed shape. Check whether moto fixed the bug.",
                    MotoCompatWarning,
                    stacklevel=2,
                )
                return False
            for patch in self.patches:
                _install(patch)
            return True

    def revert(self) -> bool:
        """Remove the fix; False if it was not applied."""
        with _LOCK:
            if not any(_is_installed(patch) for patch in self.patches):
                return False
            for patch in self.patches:
                _uninstall(patch)
            return True

    @contextmanager
    def reverted(self) -> Iterator[None]:
        """Run a block with this fix removed (the tests use it to show the bug)."""
        was_applied = self.revert()
        try:
            yield
        finally:
            if was_applied:
                self.apply()


# --------------------------------------------------------------- 1. early task outcome

_EARLY_HEARTBEAT_ATTR: Final = "_lighthpc_early_heartbeat"
_CALLBACK_LOCK = threading.Lock()


def _wrap_setup_heartbeat_endpoint(inner: Impl) -> Impl:
    def setup_heartbeat_endpoint(self: Any, heartbeat_seconds: int) -> Any:
        """Pre-arm the heartbeat wait if an outcome or a heartbeat came before it existed.

        moto only wakes the heartbeat wait on heartbeat events, so a SendTaskSuccess that
        arrived while the Lambda was still being invoked was ignored until the timeout.
        """
        with _CALLBACK_LOCK:
            endpoint = inner(self, heartbeat_seconds)
            early_heartbeat = bool(getattr(self, _EARLY_HEARTBEAT_ATTR, False))
        if early_heartbeat or self.get_outcome() is not None:
            endpoint.notify()
        return endpoint

    return setup_heartbeat_endpoint


def _wrap_notify_heartbeat(inner: Impl) -> Impl:
    def notify_heartbeat(self: Any) -> bool:
        """Accept a SendTaskHeartbeat that arrives before the heartbeat wait is set up."""
        with _CALLBACK_LOCK:
            if not inner(self):
                setattr(self, _EARLY_HEARTBEAT_ATTR, True)
        return True

    return notify_heartbeat


_CALLBACK_MODULE: Final = "moto.stepfunctions.parser.asl.eval.callback.callback"

EARLY_TASK_OUTCOME = Fix(
    name="early_task_outcome",
    design_ref="DESIGN §6.1",
    description=(
        "A SendTaskSuccess/Failure (or SendTaskHeartbeat) that arrives before the "
        "interpreter starts its heartbeat wait is honoured instead of ignored."
    ),
    patches=(
        Patch(
            f"{_CALLBACK_MODULE}:CallbackEndpoint",
            "setup_heartbeat_endpoint",
            _wrap_setup_heartbeat_endpoint,
            ("self", "heartbeat_seconds"),
        ),
        Patch(
            f"{_CALLBACK_MODULE}:CallbackEndpoint",
            "notify_heartbeat",
            _wrap_notify_heartbeat,
            ("self",),
        ),
    ),
)


# ---------------------------------------------------------- 2. States.HeartbeatTimeout

_ERROR_NAME_PKG: Final = "moto.stepfunctions.parser.asl.component.common.error_name"
_STATE_TASK_PKG: Final = "moto.stepfunctions.parser.asl.component.state.exec.state_task"


def _as_heartbeat_timeout(env: Any, failure_event: Any) -> Any:
    """The same failure event, named ``States.HeartbeatTimeout`` as AWS names it."""
    failure_module = importlib.import_module(f"{_ERROR_NAME_PKG}.failure_event")
    states_name = importlib.import_module(f"{_ERROR_NAME_PKG}.states_error_name")
    name_type = importlib.import_module(f"{_ERROR_NAME_PKG}.states_error_name_type")
    heartbeat = name_type.StatesErrorNameType.StatesHeartbeatTimeout
    details = copy.deepcopy(dict(failure_event.event_details or {}))
    for spec in details.values():
        if isinstance(spec, dict) and "error" in spec:
            spec["error"] = heartbeat.to_name()
    return failure_module.FailureEvent(
        env=env,
        error_name=states_name.StatesErrorName(typ=heartbeat),
        event_type=failure_event.event_type,
        event_details=details,
    )


def _wrap_from_error(inner: Impl) -> Impl:
    callback = importlib.import_module(_CALLBACK_MODULE)

    def _from_error(self: Any, env: Any, ex: Exception) -> Any:
        """Report heartbeat expiry as States.HeartbeatTimeout (moto said States.Timeout)."""
        failure_event = inner(self, env, ex)
        if isinstance(ex, callback.HeartbeatTimeoutError):
            return _as_heartbeat_timeout(env, failure_event)
        return failure_event

    return _from_error


def _wrap_error_equals(inner: Impl) -> Impl:
    name_type = importlib.import_module(f"{_ERROR_NAME_PKG}.states_error_name_type")
    states_name = importlib.import_module(f"{_ERROR_NAME_PKG}.states_error_name")
    heartbeat = name_type.StatesErrorNameType.StatesHeartbeatTimeout
    timeout = states_name.StatesErrorName(typ=name_type.StatesErrorNameType.StatesTimeout)

    def _eval_body(self: Any, env: Any) -> None:
        """Keep AWS's rule that ``States.Timeout`` also matches a heartbeat timeout."""
        error_name = env.stack[-1] if env.stack else None
        is_heartbeat = getattr(error_name, "typ", None) == heartbeat
        if is_heartbeat and timeout in self.error_names:
            env.stack.pop()
            env.stack.append(True)
            return
        inner(self, env)

    return _eval_body


HEARTBEAT_TIMEOUT_ERROR = Fix(
    name="heartbeat_timeout_error",
    design_ref="DESIGN §6.2",
    description=(
        "Heartbeat expiry fails the task with States.HeartbeatTimeout (which "
        "ErrorEquals States.Timeout still matches, as on AWS); TimeoutSeconds expiry "
        "stays States.Timeout."
    ),
    patches=(
        Patch(
            f"{_STATE_TASK_PKG}.service.state_task_service_callback:StateTaskServiceCallback",
            "_from_error",
            _wrap_from_error,
            ("self", "env", "ex"),
        ),
        Patch(
            f"{_STATE_TASK_PKG}.state_task_activitiy:StateTaskActivity",
            "_from_error",
            _wrap_from_error,
            ("self", "env", "ex"),
        ),
        Patch(
            f"{_ERROR_NAME_PKG}.error_equals_decl:ErrorEqualsDecl",
            "_eval_body",
            _wrap_error_equals,
            ("self", "env"),
        ),
    ),
)


# ------------------------------------------------------------ 3. DynamoDB write lock

_DYNAMODB_LOCKS: weakref.WeakKeyDictionary[Any, AbstractContextManager[Any]] = (
    weakref.WeakKeyDictionary()
)
_DYNAMODB_LOCKS_GUARD = threading.Lock()


def _dynamodb_lock(backend: Any) -> AbstractContextManager[Any]:
    with _DYNAMODB_LOCKS_GUARD:
        lock = _DYNAMODB_LOCKS.get(backend)
        if lock is None:
            lock = threading.RLock()
            _DYNAMODB_LOCKS[backend] = lock
        return lock


def _wrap_backend_serialised(inner: Impl) -> Impl:
    def serialised(self: Any, *args: Any, **kwargs: Any) -> Any:
        """Serialise item writes per backend: the threaded server lost concurrent ADDs."""
        with _dynamodb_lock(self):
            return inner(self, *args, **kwargs)

    return serialised


def _wrap_handler_serialised(inner: Impl) -> Impl:
    def serialised(self: Any) -> Any:
        """Serialise the whole request, so ReturnValues match the write that was made."""
        with _dynamodb_lock(self.dynamodb_backend):
            return inner(self)

    return serialised


_DYNAMODB_BACKEND: Final = "moto.dynamodb.models:DynamoDBBackend"
_DYNAMODB_HANDLER: Final = "moto.dynamodb.responses:DynamoHandler"

DYNAMODB_WRITE_LOCK = Fix(
    name="dynamodb_write_lock",
    design_ref="DESIGN §6.3",
    description=(
        "Concurrent item writes (UpdateItem ADD, PutItem, DeleteItem, "
        "TransactWriteItems, BatchWriteItem) are serialised per DynamoDB backend."
    ),
    patches=(
        *(
            Patch(_DYNAMODB_BACKEND, name, _wrap_backend_serialised, ("self",))
            for name in ("update_item", "put_item", "delete_item", "transact_write_items")
        ),
        *(
            Patch(_DYNAMODB_HANDLER, name, _wrap_handler_serialised, ("self",))
            for name in (
                "update_item",
                "put_item",
                "delete_item",
                "transact_write_items",
                "batch_write_item",
            )
        ),
    ),
)


# ------------------------------------------------- 4. fresh task token per attempt


def _wrap_evaluate_with_timeout(inner: Impl) -> Impl:
    resource = importlib.import_module(f"{_STATE_TASK_PKG}.service.resource")
    wait_for_task_token = resource.ResourceCondition.WaitForTaskToken

    def _evaluate_with_timeout(self: Any, env: Any) -> None:
        """Give every retry attempt of a callback task a new token and endpoint.

        moto minted the token once per state, so a retry reused the old endpoint whose
        failed (or timed-out) outcome was still set and failed again at once.
        """
        context = env.states.context_object
        retry_count = context.context_object_data.get("State", {}).get("RetryCount", 0)
        if (
            retry_count > 0
            and self._is_integration_pattern()
            and wait_for_task_token in self._supported_integration_patterns
        ):
            env.callback_pool_manager.add(context.update_task_token())
        inner(self, env)

    return _evaluate_with_timeout


FRESH_TASK_TOKEN_PER_ATTEMPT = Fix(
    name="fresh_task_token_per_attempt",
    design_ref="DESIGN §6.4",
    description="Each attempt (and each Retry) of a .waitForTaskToken task gets a new token.",
    patches=(
        Patch(
            f"{_STATE_TASK_PKG}.service.state_task_service_callback:StateTaskServiceCallback",
            "_evaluate_with_timeout",
            _wrap_evaluate_with_timeout,
            ("self", "env"),
        ),
    ),
)


# ------------------------------------------------------ 5. default execution name


def _wrap_start_execution(inner: Impl) -> Impl:
    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        trace_header: str | None = None,
    ) -> Any:
        """Name an unnamed execution with a UUID, as AWS does (moto named it "None")."""
        return inner(
            self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header
        )

    return start_execution


SFN_PARSER_BACKEND: Final = "moto.stepfunctions.parser.models:StepFunctionsParserBackend"

EXECUTION_NAME_DEFAULT = Fix(
    name="execution_name_default",
    design_ref="DESIGN §6.5",
    description="StartExecution without a name gets a UUID name instead of 'None'.",
    patches=(
        Patch(
            SFN_PARSER_BACKEND,
            "start_execution",
            _wrap_start_execution,
            ("self", "state_machine_arn", "name", "execution_input", "trace_header"),
        ),
    ),
)


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


# ------------------------------------------------ 7. SendTaskFailure keeps its cause


def _wrap_send_task_failure(_inner: Impl) -> Impl:
    def send_task_failure(self: Any) -> Any:
        """Pass ``cause`` on: moto 5.2.5 dropped it, so a Catch saw ``"Cause": null`` and the
        node's stderr tail never reached RecordUnitFailure."""
        from moto.core.responses import EmptyResult

        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"),
            error=self._get_param("error"),
            cause=self._get_param("cause"),
        )
        return EmptyResult()

    return send_task_failure


TASK_FAILURE_CAUSE = Fix(
    name="task_failure_cause",
    design_ref="DESIGN §6 (found while building the node agent)",
    description="SendTaskFailure passes its cause to the waiting task (moto dropped it).",
    patches=(
        Patch(
            "moto.stepfunctions.responses:StepFunctionResponse",
            "send_task_failure",
            _wrap_send_task_failure,
            ("self",),
        ),
    ),
)


# ------------------------------------------- 8. transactions snapshot items, not tables


@dataclass
class _TransactionSnapshot:
    """The items a TransactWriteItems names, as they were before it ran, for rollback."""

    tables: dict[str, Any] = field(default_factory=dict)
    items: list[tuple[Any, Any, Any, Any]] = field(default_factory=list)  # table, hash, range, item
    stream_lengths: dict[str, int] = field(default_factory=dict)

    @classmethod
    def take(cls, backend: Any, transact_items: list[dict[str, Any]]) -> _TransactionSnapshot:
        invalid = importlib.import_module("moto.dynamodb.exceptions").MockValidationException
        snap = cls()
        for entry in transact_items:
            if not isinstance(entry, dict) or len(entry) != 1:
                continue  # moto refuses the transaction before any write
            op_type, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            snap.tables[table.name] = table
            shard = getattr(table, "stream_shard", None)
            if shard is not None:
                snap.stream_lengths[table.name] = len(shard.items)
            keys = _transaction_keys(table, op_type, op)
            if keys is None:
                continue
            try:
                hash_key, range_key = backend.get_keys_value(table, keys)
                current = table.get_item(hash_key, range_key)
            except invalid:
                continue  # moto refuses this key too, before any write
            snap.items.append((table, hash_key, range_key, copy.deepcopy(current)))
        return snap

    @contextmanager
    def tables_not_copied(self) -> Iterator[None]:
        """moto deep-copies each named table for its rollback: make that copy the table.

        Only for the transaction's duration, under the DynamoDB lock (a CreateBackup in that
        window would share the table; the product never makes one)."""
        for table in self.tables.values():
            vars(table)["__deepcopy__"] = lambda _memo, same=table: same
        try:
            yield
        finally:
            for table in self.tables.values():
                vars(table).pop("__deepcopy__", None)

    def restore(self) -> None:
        for table, hash_key, range_key, item in reversed(self.items):
            _put_back(table, hash_key, range_key, item)
        for name, length in self.stream_lengths.items():
            del self.tables[name].stream_shard.items[length:]


def _transaction_keys(table: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any] | None:
    """The key of the item a Put/Update/Delete writes (None for ConditionCheck or no key)."""
    if op_type == "Put":
        item = op.get("Item") or {}
        names = [table.hash_key_attr, *([table.range_key_attr] if table.range_key_attr else [])]
        if not all(name in item for name in names):
            return None
        return {name: item[name] for name in names}
    if op_type in {"Update", "Delete"}:
        key = op.get("Key")
        return key if isinstance(key, dict) else None
    return None


def _put_back(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
        return
    if item is not None:
        table.items[hash_key][range_key] = item
        return
    by_range = table.items.get(hash_key)
    if by_range is not None:
        by_range.pop(range_key, None)
        if not by_range:
            del table.items[hash_key]


def _wrap_transact_write_items(inner: Impl) -> Impl:
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        """Roll back a cancelled transaction from item snapshots.

        moto deep-copied every table the transaction touched, on every call, so one shard
        commit cost O(items in tblTrans): 670 ms at 10,000 items, under the write lock.
        """
        with _dynamodb_lock(self):
            snapshot = _TransactionSnapshot.take(self, transact_items)
            try:
                with snapshot.tables_not_copied():
                    inner(self, transact_items)
            except BaseException:
                snapshot.restore()
                raise

    return transact_write_items


TRANSACTION_ITEM_SNAPSHOT = Fix(
    name="transaction_item_snapshot",
    design_ref="DESIGN §6 (found by benchmarks/scale.py)",
    description=(
        "TransactWriteItems snapshots only the items it writes for its rollback; moto "
        "deep-copied every table it touched, so each commit slowed as tblTrans grew."
    ),
    patches=(
        Patch(
            _DYNAMODB_BACKEND,
            "transact_write_items",
            _wrap_transact_write_items,
            ("self", "transact_items"),
        ),
    ),
)


# ------------------------------------ 9. DynamoDB attribute values serialised as they are


def is_wire_attribute_value(value: Any) -> bool:
    """True for a DynamoDB AttributeValue already in its JSON wire form (binary excluded:
    moto's serializer base64-encodes it)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    check = _WIRE_CHECKS.get(kind)
    return check is not None and check(inner)


_WIRE_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "S": lambda v: isinstance(v, str),
    "N": lambda v: isinstance(v, str),
    "BOOL": lambda v: isinstance(v, bool),
    "NULL": lambda v: isinstance(v, bool),
    "SS": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "NS": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "M": lambda v: (
        isinstance(v, dict)
        and all(isinstance(k, str) and is_wire_attribute_value(x) for k, x in v.items())
    ),
    "L": lambda v: isinstance(v, list) and all(is_wire_attribute_value(x) for x in v),
}


def _wrap_json_structure(inner: Impl) -> Impl:
    def _serialize_type_structure(
        self: Any, serialized: Any, value: Any, shape: Any, key: str
    ) -> None:
        """Emit an AttributeValue in wire form as it is. moto resolved each of its ten
        members through alias lookups: ~1 ms per item, 0.9 s for a 1,000-item Query."""
        if key and shape.name == "AttributeValue" and is_wire_attribute_value(value):
            self._default_serialize(serialized, value, shape, key)
            return
        inner(self, serialized, value, shape, key)

    return _serialize_type_structure


DYNAMODB_WIRE_VALUES = Fix(
    name="dynamodb_wire_values",
    design_ref="DESIGN §6 (found by benchmarks/overhead.py)",
    description=(
        "DynamoDB responses emit attribute values already in wire form directly instead of "
        "walking each through moto's generic shape serializer (same JSON, ~10x faster)."
    ),
    patches=(
        Patch(
            "moto.core.serialize:BaseJSONSerializer",
            "_serialize_type_structure",
            _wrap_json_structure,
            ("self", "serialized", "value", "shape", "key"),
        ),
    ),
)


# ------------------------------------------------ 10. Query reads its partition's key range


def _is_base_key_query(table: Any, arg: dict[str, Any]) -> bool:
    """A Query on the table's own hash + range key: no index, no legacy QueryFilter."""
    if arg.get("index_name") or arg.get("filter_kwargs") or not table.range_key_attr:
        return False
    hash_names = [c[0] for c in arg.get("hash_key_conditions") or []]
    range_names = [c[0] for c in arg.get("range_key_conditions") or []]
    return hash_names in ([], [table.hash_key_attr]) and range_names in (
        [],
        [table.range_key_attr],
    )


def _key_range(partition: dict[Any, Any], comparison: str, objs: Any) -> dict[Any, Any]:
    """The items whose range key matches, plus the nearest item on either side.

    Matches are contiguous in key order; the neighbours keep moto's paging exact (it
    reports a LastEvaluatedKey when the Limit is reached and any item follows).
    """
    matching = {k: v for k, v in partition.items() if v.range_key.compare(comparison, objs)}
    if not matching:
        return {}
    low, high = min(matching), max(matching)
    below = [k for k in partition if k not in matching and k < low]
    above = [k for k in partition if k not in matching and k > high]
    for neighbour in (max(below, default=None), min(above, default=None)):
        if neighbour is not None:
            matching[neighbour] = partition[neighbour]
    return matching


def _wrap_table_query(inner: Impl) -> Impl:
    signature = inspect.signature(inner)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        """Give moto's Query only the partition's items in the key range.

        moto sorted every item of the table, then computed the size of every item of the
        partition, on every Query: ~1 s at 10,000 items, for a unit's 33 shards.
        """
        arg = signature.bind(self, *args, **kwargs).arguments
        hash_key = arg.get("hash_key")
        if hash_key is None or not _is_base_key_query(self, arg):
            return inner(self, *args, **kwargs)
        partition = dict(self.items.get(hash_key, {}))
        comparison = arg.get("range_comparison")
        if comparison:
            partition = _key_range(partition, comparison, arg.get("range_objs"))
        view = copy.copy(self)  # shares everything but ``items``: moto's query only reads
        view.items = {hash_key: partition}
        return inner(view, *args, **kwargs)

    return query


DYNAMODB_QUERY_PARTITION = Fix(
    name="dynamodb_query_partition",
    design_ref="DESIGN §6 (found by benchmarks/scale.py)",
    description=(
        "A base-table Query reads only its partition's items in the key range (moto sorted "
        "the whole table and sized the whole partition on every Query)."
    ),
    patches=(
        Patch(
            "moto.dynamodb.models.table:Table",
            "query",
            _wrap_table_query,
            ("self", "hash_key", "range_comparison", "range_objs"),
        ),
    ),
)


# --------------------------------------------------------------------- public entry

FIXES: Final[tuple[Fix, ...]] = (
    EARLY_TASK_OUTCOME,
    HEARTBEAT_TIMEOUT_ERROR,
    DYNAMODB_WRITE_LOCK,
    FRESH_TASK_TOKEN_PER_ATTEMPT,
    EXECUTION_NAME_DEFAULT,
    EVENTBRIDGE_SFN_TARGET,
    S3_EVENTBRIDGE_EVENT_SHAPE,
    TASK_FAILURE_CAUSE,
    TRANSACTION_ITEM_SNAPSHOT,
    DYNAMODB_WIRE_VALUES,
    DYNAMODB_QUERY_PARTITION,
)
FIXES_BY_NAME: Final[dict[str, Fix]] = {fix.name: fix for fix in FIXES}


def installed_moto_version() -> str | None:
    try:
        module = importlib.import_module("moto")
    except ImportError:
        return None
    return str(getattr(module, "__version__", "")) or None


def check_moto_version() -> bool:
    """Warn (never fail) when moto is not the version these fixes were measured on."""
    version = installed_moto_version()
    if version == MOTO_VERSION_PINNED:
        return True
    warnings.warn(
        f"moto {version} is installed; the compatibility fixes were measured on "
        f"{MOTO_VERSION_PINNED}. Run tests/functional/test_moto_compat.py to see which "
        "fixes are still needed.",
        MotoCompatWarning,
        stacklevel=2,
    )
    return False


def apply_all() -> list[str]:
    """Apply every fix that still fits moto; return the names newly applied."""
    check_moto_version()
    return [fix.name for fix in FIXES if fix.apply()]


def revert_all(names: list[str] | None = None) -> list[str]:
    """Revert the named fixes (default: all); return the names actually reverted."""
    selected = FIXES if names is None else tuple(FIXES_BY_NAME[name] for name in names)
    return [fix.name for fix in reversed(selected) if fix.revert()]
