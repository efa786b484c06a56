"""In-process Lambda runtime for the embedded cloud.

moto's non-Docker Lambda backend (``LambdaSimpleBackend``) echoes the payload back. While a
:class:`LambdaRegistry` is installed, an Invoke of a function that has a registered Python
handler calls that handler in-process, with the semantics of AWS's Python runtime:

* ``RequestResponse``: the JSON result is the payload; an exception becomes
  ``{"errorType": type(exc).__name__, "errorMessage": str(exc), ...}`` with the
  ``X-Amz-Function-Error: Unhandled`` header, so Step Functions raises ``errorType``
  (our exception classes carry their dotted API name, e.g. ``Mission.InvalidInput``);
* ``Event``: the handler runs on a background thread and Invoke returns 202 at once
  (no automatic retries of failed asynchronous invocations);
* ``DryRun``: nothing runs, 204.

The function itself must still exist in moto (state machines reference its ARN):
:func:`create_stub_function` creates it. Invoking an existing function that has no
handler raises ``ResourceNotFoundException`` (``strict=True``, the default) or falls back
to moto's echo (``strict=False``).

The function's configured limits apply (``stack.py`` sets them from
``function_limits.json``, the template's), failing with AWS's error names so that Retry and
Catch see what they would see on AWS:

* timeout -> ``Sandbox.Timedout``; memory -> ``Runtime.OutOfMemory``: the handler runs on its
  own thread, watched every ``WATCH_INTERVAL_SECONDS``; past a limit the invocation fails
  at once and the thread is stopped with an asynchronous exception (a thread cannot be
  killed, so a handler blocked in C, e.g. ``time.sleep``, stops when it returns);
* memory is the growth of the process RSS during the invocation, over the
  ``RUNTIME_BASELINE_MB`` the Python runtime itself uses on AWS. RSS, not tracemalloc,
  because it also sees native allocations (RDKit, numpy in the molsim reduce) and costs
  nothing per allocation; the price is that concurrent invocations share the process, so
  under concurrency the growth of one may be charged to another (stricter, never kinder);
* ``/tmp``: each invocation gets its own directory, returned by ``tempfile.gettempdir()``
  on the handler's thread, and its size is watched against the ephemeral storage (512 MB
  by default). Past it the handler gets ``OSError: [Errno 28] No space left on device``
  where it is, as a full ``/tmp`` raises on AWS; unhandled, AWS's Python runtime reports it
  as ``errorType: OSError``. The size is sampled every ``WATCH_INTERVAL_SECONDS``: files that
  pass the limit and are deleted again within one interval go unseen (kinder than AWS for
  such bursts; what stays on ``/tmp``, as RsltProc's shard results do, is always seen);
* 6 MB payloads: a larger request is refused with ``RequestEntityTooLargeException``, a
  larger response fails the invocation with ``Function.ResponseSizeTooLarge``.
"""

from __future__ import annotations

import ctypes
import errno
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from localcloud.moto_compat import Fix, Impl, Patch

LOGGER = logging.getLogger(__name__)

Handler = Callable[[Any, "LambdaContext"], Any]

STUB_ROLE_NAME: Final = "lighthpc-local-lambda"
STUB_RUNTIME: Final = "python3.11"
DEFAULT_TIMEOUT_SECONDS: Final = 900
DEFAULT_MEMORY_MB: Final = 512
DEFAULT_EPHEMERAL_MB: Final = 512
PAYLOAD_LIMIT_BYTES: Final = 6 * 1024 * 1024  # synchronous Invoke, request and response
RUNTIME_BASELINE_MB: Final = 40  # AWS's "Max Memory Used" of an empty Python handler
WATCH_INTERVAL_SECONDS: Final = 0.05
_MB: Final = 1024 * 1024

_LAMBDA_ASSUME_ROLE_POLICY: Final = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
_STUB_SOURCE: Final = (
    "def handler(event, context):\n"
    "    raise RuntimeError('this function is dispatched in-process by lightHPC local mode')\n"
)


@dataclass(frozen=True)
class LambdaContext:
    """The parts of the Lambda context object that handlers and powertools read."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_monotonic: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_monotonic - time.monotonic()) * 1000))

    @classmethod
    def for_function(cls, function: Any, invoked_arn: str | None = None) -> LambdaContext:
        """Build a context from a moto ``LambdaFunction``."""
        name = str(function.function_name)
        return cls(
            function_name=name,
            function_version="$LATEST",
            invoked_function_arn=invoked_arn or str(function.function_arn),
            memory_limit_in_mb=int(function.memory_size or 128),
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{name}",
            log_stream_name=f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
            deadline_monotonic=time.monotonic() + float(function.timeout or 3),
        )


def function_name_of(function_ref: str) -> str:
    """``name``, ``name:qualifier``, a function ARN or a partial ARN -> the bare name."""
    parts = function_ref.split(":")
    if "function" in parts:
        return parts[parts.index("function") + 1]
    return parts[0]


def error_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    """The payload AWS's Python runtime returns for an unhandled exception."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


@dataclass(frozen=True)
class InvocationResult:
    payload: bytes
    function_error: str | None


@dataclass(frozen=True)
class FunctionLimits:
    """What the function's configuration allows one invocation."""

    timeout_seconds: float
    memory_mb: int
    ephemeral_mb: int = DEFAULT_EPHEMERAL_MB

    @classmethod
    def for_function(cls, function: Any) -> FunctionLimits:
        """The limits of a moto ``LambdaFunction`` (AWS's defaults where it has none)."""
        return cls(
            timeout_seconds=float(function.timeout or 3),
            memory_mb=int(function.memory_size or 128),
            ephemeral_mb=int(getattr(function, "ephemeral_storage", 0) or DEFAULT_EPHEMERAL_MB),
        )


LIMITS_FILE: Final = Path(__file__).with_name("function_limits.json")


def load_function_limits(path: Path = LIMITS_FILE) -> dict[str, FunctionLimits]:
    """The template's limits per function key (``lighthpc_infra.limits_snapshot`` wrote them)."""
    raw: dict[str, dict[str, int]] = json.loads(path.read_text(encoding="utf-8"))
    return {
        key: FunctionLimits(v["timeout"], v["memorySize"], v["ephemeralStorage"])
        for key, v in raw.items()
    }


def _runtime_error(error_type: str, message: str, context: LambdaContext) -> InvocationResult:
    body = {"errorMessage": message, "errorType": error_type, "requestId": context.aws_request_id}
    return InvocationResult(json.dumps(body).encode(), "Unhandled")


class _Stopped(BaseException):
    """Raised inside a handler thread that the sandbox has given up on (no ``except
    Exception`` in the handler can keep it alive)."""


class _NoSpaceLeft(OSError):
    """``/tmp`` is full: what a write raises on AWS (type name ``OSError``, errno 28)."""

    def __init__(self) -> None:
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC))


_NoSpaceLeft.__name__ = _NoSpaceLeft.__qualname__ = "OSError"


def _raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type)
        )


_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_rss_bytes() -> int | None:
    """The resident set size of this process (Linux ``/proc``); None where unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def directory_bytes(root: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue  # removed while we walked
    return total


_INVOCATION = threading.local()
_ORIGINAL_GETTEMPDIR: Final = tempfile.gettempdir


def _invocation_gettempdir() -> str:
    """``tempfile.gettempdir`` that answers the invocation's own ``/tmp`` on its thread."""
    tmp: str | None = getattr(_INVOCATION, "tmpdir", None)
    return tmp if tmp is not None else _ORIGINAL_GETTEMPDIR()


def run_limited(
    handler: Handler, event: Any, context: LambdaContext, limits: FunctionLimits
) -> InvocationResult:
    """:func:`run_handler` inside the function's limits (see the module docstring)."""
    tmpdir = tempfile.mkdtemp(prefix=f"lambda-tmp-{context.function_name}-")
    outcome: list[InvocationResult] = []

    def target() -> None:
        _INVOCATION.tmpdir = tmpdir
        try:
            outcome.append(run_handler(handler, event, context))
        except _Stopped:
            return
        finally:
            _INVOCATION.tmpdir = None

    thread = threading.Thread(target=target, name=f"lambda-{context.function_name}", daemon=True)
    rss_at_start = process_rss_bytes()
    memory_budget = (limits.memory_mb - RUNTIME_BASELINE_MB) * _MB
    deadline = time.monotonic() + limits.timeout_seconds
    full = False
    thread.start()
    try:
        while True:
            thread.join(WATCH_INTERVAL_SECONDS)
            if not thread.is_alive():
                break
            if time.monotonic() >= deadline:
                _raise_in(thread, _Stopped)
                return _runtime_error(
                    "Sandbox.Timedout",
                    f"RequestId: {context.aws_request_id} Error: Task timed out after "
                    f"{limits.timeout_seconds:.2f} seconds",
                    context,
                )
            rss = process_rss_bytes()
            if rss is not None and rss_at_start is not None and rss - rss_at_start > memory_budget:
                _raise_in(thread, _Stopped)
                return _runtime_error(
                    "Runtime.OutOfMemory",
                    f"RequestId: {context.aws_request_id} Error: Runtime exited with error: "
                    f"signal: killed (memory {limits.memory_mb} MB)",
                    context,
                )
            if not full and directory_bytes(tmpdir) > limits.ephemeral_mb * _MB:
                full = True  # once: the handler may catch it and clean up, as on AWS
                _raise_in(thread, _NoSpaceLeft)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    result = outcome[0]
    if len(result.payload) > PAYLOAD_LIMIT_BYTES:
        return _runtime_error(
            "Function.ResponseSizeTooLarge",
            f"Response payload size ({len(result.payload)} bytes) exceeded maximum allowed "
            f"payload size ({PAYLOAD_LIMIT_BYTES} bytes).",
            context,
        )
    return result


def run_handler(handler: Handler, event: Any, context: LambdaContext) -> InvocationResult:
    """Call the handler like the Python runtime does: exceptions become error payloads."""
    try:
        result = handler(event, context)
    except Exception as exc:  # the runtime boundary reports every error, as AWS does
        LOGGER.info("%s raised %s", context.function_name, type(exc).__name__, exc_info=True)
        body = error_payload(exc, context.aws_request_id)
        return InvocationResult(json.dumps(body).encode(), "Unhandled")
    try:
        return InvocationResult(json.dumps(result).encode(), None)
    except (TypeError, ValueError) as exc:
        body = {
            "errorMessage": f"Unable to marshal response: {exc}",
            "errorType": "Runtime.MarshalError",
            "requestId": context.aws_request_id,
            "stackTrace": [],
        }
        return InvocationResult(json.dumps(body).encode(), "Unhandled")


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name) if headers is not None else None
    if value is None and isinstance(headers, Mapping):
        lowered = {str(k).lower(): v for k, v in headers.items()}
        value = lowered.get(name.lower())
    return None if value is None else str(value)


def _parse_event(body: Any) -> Any:
    from moto.awslambda.exceptions import LambdaClientError

    raw = body.decode() if isinstance(body, bytes | bytearray) else (body or "")
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LambdaClientError(
            "InvalidRequestContentException", "Could not parse request body into json"
        ) from exc


def _check_request_size(body: Any) -> None:
    from moto.awslambda.exceptions import LambdaClientError

    size = len(body.encode() if isinstance(body, str) else (body or b""))
    if size > PAYLOAD_LIMIT_BYTES:
        raise LambdaClientError(
            "RequestEntityTooLargeException",
            f"{size} byte payload is too large for the RequestResponse invocation type "
            f"(limit {PAYLOAD_LIMIT_BYTES} bytes)",
        )


_ACTIVE_LOCK = threading.Lock()
_ACTIVE: list[LambdaRegistry] = []


class LambdaRegistry:
    """Python handlers keyed by Lambda function name, dispatched in-process by moto."""

    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._async_threads: list[threading.Thread] = []
        self._dispatch = Fix(
            name="lambda_in_process_dispatch",
            design_ref="DESIGN §6 (Lambda calls dispatched in-process)",
            description="LambdaSimpleBackend.invoke calls registered Python handlers.",
            patches=(
                Patch(
                    "moto.awslambda_simple.models:LambdaSimpleBackend",
                    "invoke",
                    self._wrap_invoke,
                    ("self", "function_name", "qualifier", "body", "headers", "response_headers"),
                ),
            ),
        )

    # ------------------------------------------------------------------ registry
    def register(self, function_name: str, handler: Handler) -> None:
        """Dispatch invocations of ``function_name`` (a name, ARN or name:qualifier)."""
        with self._lock:
            self._handlers[function_name_of(function_name)] = handler

    def unregister(self, function_name: str) -> None:
        with self._lock:
            self._handlers.pop(function_name_of(function_name), None)

    def handler_for(self, function_ref: str) -> Handler | None:
        with self._lock:
            return self._handlers.get(function_name_of(function_ref))

    def registered(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._handlers)

    # -------------------------------------------------------------- installation
    @property
    def installed(self) -> bool:
        return self._dispatch.is_applied()

    def install(self) -> None:
        """Route moto's non-Docker Lambda invocations to this registry."""
        with _ACTIVE_LOCK:
            if _ACTIVE and _ACTIVE[0] is not self:
                raise RuntimeError("another LambdaRegistry is already installed")
            if not self._dispatch.apply() and not self._dispatch.is_applied():
                raise RuntimeError("moto's LambdaSimpleBackend.invoke changed shape")
            _ACTIVE[:] = [self]
            tempfile.gettempdir = _invocation_gettempdir

    def uninstall(self) -> None:
        with _ACTIVE_LOCK:
            self._dispatch.revert()
            if _ACTIVE and _ACTIVE[0] is self:
                _ACTIVE.clear()
                tempfile.gettempdir = _ORIGINAL_GETTEMPDIR

    def wait_for_async(self, timeout: float) -> bool:
        """Wait for ``Event`` invocations started so far; True if all finished in time."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._async_threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._async_threads = [t for t in self._async_threads if t.is_alive()]
            return not self._async_threads

    # ------------------------------------------------------------------ dispatch
    def _start_async(
        self, handler: Handler, event: Any, context: LambdaContext, limits: FunctionLimits
    ) -> None:
        def run() -> None:
            result = run_limited(handler, event, context, limits)
            if result.function_error:
                LOGGER.warning(
                    "asynchronous invocation of %s failed: %s",
                    context.function_name,
                    result.payload.decode(),
                )

        thread = threading.Thread(
            target=run, name=f"lambda-event-{context.function_name}", daemon=True
        )
        with self._lock:
            self._async_threads = [t for t in self._async_threads if t.is_alive()]
            self._async_threads.append(thread)
        thread.start()

    def invoke(
        self, function: Any, body: Any, headers: Any, response_headers: dict[str, Any]
    ) -> bytes | None:
        """Run the registered handler of a moto ``LambdaFunction`` for one Invoke call."""
        handler = self.handler_for(str(function.function_name))
        if handler is None:
            return None
        _check_request_size(body)
        event = _parse_event(body)
        context = LambdaContext.for_function(function)
        limits = FunctionLimits.for_function(function)
        invocation_type = _header(headers, "X-Amz-Invocation-Type") or "RequestResponse"
        response_headers["x-amz-executed-version"] = "$LATEST"
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            self._start_async(handler, event, context, limits)
            return b""
        result = run_limited(handler, event, context, limits)
        if result.function_error:
            response_headers["x-amz-function-error"] = result.function_error
        return result.payload

    def _wrap_invoke(self, inner: Impl) -> Impl:
        registry = self

        def invoke(  # noqa: PLR0917 - moto's positional signature
            backend: Any,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: dict[str, Any],
        ) -> Any:
            """Dispatch to the registered in-process handler (moto echoed the payload)."""
            from moto.awslambda.exceptions import UnknownFunctionException

            function = backend.get_function(function_name, qualifier)
            payload = registry.invoke(function, body, headers, response_headers)
            if payload is None:
                if not registry.strict:
                    return inner(backend, function_name, qualifier, body, headers, response_headers)
                raise UnknownFunctionException(
                    f"{function.function_arn} (no in-process handler is registered for "
                    f"{function.function_name!r} in the embedded cloud)"
                )
            response_headers["Content-Length"] = str(len(payload))
            return payload

        return invoke


def _zip_stub() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("index.py", _STUB_SOURCE)
    return buffer.getvalue()


def _stub_role_arn(iam_client: Any) -> str:
    try:
        return str(iam_client.get_role(RoleName=STUB_ROLE_NAME)["Role"]["Arn"])
    except iam_client.exceptions.NoSuchEntityException:
        created = iam_client.create_role(
            RoleName=STUB_ROLE_NAME,
            AssumeRolePolicyDocument=json.dumps(_LAMBDA_ASSUME_ROLE_POLICY),
        )
        return str(created["Role"]["Arn"])


def create_stub_function(
    lambda_client: Any,
    iam_client: Any,
    name: str,
    *,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
    memory_mb: int = DEFAULT_MEMORY_MB,
    ephemeral_mb: int = DEFAULT_EPHEMERAL_MB,
    environment: Mapping[str, str] | None = None,
) -> str:
    """Create (or find) a minimal function named ``name`` in moto; return its ARN."""
    try:
        existing = lambda_client.get_function(FunctionName=name)
        return str(existing["Configuration"]["FunctionArn"])
    except lambda_client.exceptions.ResourceNotFoundException:
        pass
    created = lambda_client.create_function(
        FunctionName=name,
        Runtime=STUB_RUNTIME,
        Role=_stub_role_arn(iam_client),
        Handler="index.handler",
        Code={"ZipFile": _zip_stub()},
        Timeout=timeout_seconds,
        MemorySize=memory_mb,
        EphemeralStorage={"Size": ephemeral_mb},
        Environment={"Variables": dict(environment or {})},
    )
    return str(created["FunctionArn"])
