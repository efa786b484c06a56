"""AWS-parity fixes for moto's Step Functions: callbacks, timeouts, tokens, names, causes.

Each fix makes the interpreter behave as AWS does where the product relies on it
(DESIGN §6): fixes 1, 2, 4, 5 and 7 of the package's list.
"""

from __future__ import annotations

import copy
import importlib
import threading
import uuid
from typing import Any, Final

from localcloud.moto_compat.machinery import Fix, Impl, Patch

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
