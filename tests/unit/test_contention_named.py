"""A handler's DynamoDB contention leaves it under the name the state machine retries."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdas.runtime import contention_named
from workflow.errors import StoreContended


def _refusal(code: str, reasons: list[str] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "refused"}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


def _raising(exc: Exception) -> Any:
    @contention_named
    def handler(event: Any, context: Any) -> Any:
        raise exc

    return handler


@pytest.mark.parametrize(
    "refusal",
    [
        _refusal("TransactionConflictException"),
        _refusal("ProvisionedThroughputExceededException"),
        _refusal("ThrottlingException"),
        _refusal("TransactionCanceledException", ["None", "TransactionConflict"]),
    ],
)
def test_contention_leaves_the_handler_as_store_contended(refusal: ClientError) -> None:
    with pytest.raises(StoreContended) as raised:
        _raising(refusal)({}, None)
    assert type(raised.value).__name__ == "Store.Contended"  # the Lambda's errorType
    assert raised.value.__cause__ is refusal


@pytest.mark.parametrize(
    "refusal",
    [
        _refusal("AccessDeniedException"),
        _refusal("ConditionalCheckFailedException"),
        # A condition said no: an answer, even beside a conflict on another item.
        _refusal("TransactionCanceledException", ["ConditionalCheckFailed", "TransactionConflict"]),
    ],
)
def test_answers_and_other_refusals_pass_through_unnamed(refusal: ClientError) -> None:
    with pytest.raises(ClientError) as raised:
        _raising(refusal)({}, None)
    assert raised.value is refusal


def test_a_handler_that_returns_is_untouched() -> None:
    @contention_named
    def handler(event: Any, context: Any) -> Any:
        return {"event": event}

    assert handler(1, None) == {"event": 1}
    assert handler.__name__ == "handler"
