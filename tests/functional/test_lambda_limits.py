"""The in-process Lambda runtime fails as Lambda fails, past the function's own limits."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud.lambda_runtime import (
    PAYLOAD_LIMIT_BYTES,
    WATCH_INTERVAL_SECONDS,
    LambdaContext,
    create_stub_function,
    load_function_limits,
)
from tests.functional._compat_fixtures import Harness, open_harness, output_of

MB = 1024 * 1024


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


def _function(
    harness: Harness,
    handler: Any,
    *,
    timeout_seconds: int = 30,
    memory_mb: int = 512,
    ephemeral_mb: int = 512,
) -> str:
    name = harness.unique("limited")
    arn = create_stub_function(
        harness.client("lambda"),
        harness.client("iam"),
        name,
        timeout_seconds=timeout_seconds,
        memory_mb=memory_mb,
        ephemeral_mb=ephemeral_mb,
    )
    harness.cloud.lambdas.register(name, handler)
    return arn


def _invoke(harness: Harness, arn: str, payload: Any = None) -> tuple[str | None, Any]:
    resp = harness.client("lambda").invoke(
        FunctionName=arn, Payload=json.dumps(payload or {}).encode()
    )
    return resp.get("FunctionError"), json.loads(resp["Payload"].read())


def _sleeps(_event: Any, _context: LambdaContext) -> dict[str, Any]:
    time.sleep(3)
    return {"slept": True}


def _allocates(_event: Any, _context: LambdaContext) -> int:
    """Holds 400 MB of touched pages while it works, as a handler does: memory is sampled
    every ``WATCH_INTERVAL_SECONDS`` (like /tmp), and 400 MB can be filled and freed within
    one interval on a fast machine."""
    hog = [bytearray(MB) for _ in range(400)]
    time.sleep(4 * WATCH_INTERVAL_SECONDS)
    return len(hog)


def _fills_tmp(event: Any, _context: LambdaContext) -> str:
    """Writes ``mb`` MB to /tmp and keeps using the file, as RsltProc keeps shard results
    (the size is sampled: a burst deleted within one interval is not seen)."""
    chunk = b"\1" * MB
    with tempfile.NamedTemporaryFile() as out:
        for _ in range(event["mb"]):
            out.write(chunk)
            out.flush()
        time.sleep(20 * WATCH_INTERVAL_SECONDS)
    return f"wrote {event['mb']} MB"


def _answers_big(_event: Any, _context: LambdaContext) -> str:
    return "x" * (PAYLOAD_LIMIT_BYTES + 1)


def test_a_handler_past_its_timeout_fails_with_sandbox_timedout(harness: Harness) -> None:
    arn = _function(harness, _sleeps, timeout_seconds=1)
    started = time.monotonic()
    error, body = _invoke(harness, arn)
    assert (error, body["errorType"]) == ("Unhandled", "Sandbox.Timedout")
    assert time.monotonic() - started < 2.5


def test_the_state_machine_catches_sandbox_timedout(harness: Harness) -> None:
    arn = _function(harness, _sleeps, timeout_seconds=1)
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": arn, "Payload": {}},
        "Catch": [{"ErrorEquals": ["Sandbox.Timedout"], "Next": "TimedOut"}],
        "End": True,
    }
    timed_out = {"Type": "Pass", "Parameters": {"error.$": "$.Error"}, "End": True}
    machine = harness.state_machine(
        {"StartAt": "Call", "States": {"Call": task, "TimedOut": timed_out}}
    )
    assert output_of(harness.run(machine)) == {"error": "Sandbox.Timedout"}


def test_a_handler_past_its_memory_fails_with_runtime_out_of_memory(harness: Harness) -> None:
    arn = _function(harness, _allocates, memory_mb=256)
    error, body = _invoke(harness, arn)
    assert (error, body["errorType"]) == ("Unhandled", "Runtime.OutOfMemory")


def test_a_handler_within_its_memory_succeeds(harness: Harness) -> None:
    arn = _function(harness, _allocates, memory_mb=1024)
    assert _invoke(harness, arn) == (None, 400)


def test_a_handler_filling_its_tmp_gets_enospc(harness: Harness) -> None:
    """512 MB (the smallest /tmp AWS allows): 600 MB of writes hit ENOSPC on the way."""
    arn = _function(harness, _fills_tmp, ephemeral_mb=512, memory_mb=256)
    error, body = _invoke(harness, arn, {"mb": 600})
    assert (error, body["errorType"]) == ("Unhandled", "OSError")
    assert "No space left on device" in body["errorMessage"]
    assert _invoke(harness, arn, {"mb": 100}) == (None, "wrote 100 MB")


def test_each_invocation_has_its_own_tmp(harness: Harness) -> None:
    seen: list[str] = []

    def where(_event: Any, _context: LambdaContext) -> str:
        seen.append(tempfile.gettempdir())
        return seen[-1]

    arn = _function(harness, where)
    _invoke(harness, arn)
    _invoke(harness, arn)
    assert len(set(seen)) == 2
    assert not any(Path(p).exists() for p in seen)  # removed after the invocation
    assert tempfile.gettempdir() not in seen


def test_a_response_over_6_mb_fails_with_function_response_size_too_large(
    harness: Harness,
) -> None:
    arn = _function(harness, _answers_big)
    error, body = _invoke(harness, arn)
    assert (error, body["errorType"]) == ("Unhandled", "Function.ResponseSizeTooLarge")


def test_a_request_over_6_mb_is_refused(harness: Harness) -> None:
    arn = _function(harness, lambda event, _context: "never called")
    with pytest.raises(ClientError) as refused:
        _invoke(harness, arn, {"blob": "x" * PAYLOAD_LIMIT_BYTES})
    assert refused.value.response["Error"]["Code"] == "RequestEntityTooLargeException"


def test_the_stack_deploys_the_template_limits() -> None:
    limits = load_function_limits()
    assert limits["rslt_proc"].memory_mb == 1024
    assert limits["light_scheduler"].timeout_seconds == 300
