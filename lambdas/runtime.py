"""Shared cold-start wiring for the handlers: one Services object per container."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache, wraps
from typing import IO, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from botocore.exceptions import ClientError

from workflow.aws.dynamodb import is_contention
from workflow.aws.services import Services, make_services
from workflow.errors import StoreContended

SERVICE = "lighthpc"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="LightHPC", service=SERVICE)


_Handler = TypeVar("_Handler", bound=Callable[..., Any])

_configured: Services | None = None
_acting: ContextVar[Services | None] = ContextVar("lighthpc_acting_services", default=None)


def services() -> Services:
    """The invocation's Services (``acting_as``), else the configured ones, else clients
    built at the first invocation (cold start)."""
    acting = _acting.get()
    if acting is not None:
        return acting
    return _configured if _configured is not None else _from_environment()


@contextmanager
def acting_as(svc: Services) -> Iterator[Services]:
    """Run one invocation with ``svc`` (the local cloud: each function's own role's clients,
    where on AWS each function's container has its own credentials)."""
    token = _acting.set(svc)
    try:
        yield svc
    finally:
        _acting.reset(token)


@lru_cache(maxsize=1)
def _from_environment() -> Services:
    return make_services()


def configure(svc: Services | None) -> None:
    """Hand the handlers explicit clients (local mode, tests); None returns to the environment."""
    global _configured  # noqa: PLW0603 - one process-wide wiring point, set by the host
    _configured = svc
    _from_environment.cache_clear()


def route_logs(stream: IO[str]) -> None:
    """Send the handlers' structured logs to ``stream`` (the local mode keeps the terminal
    for progress and writes Lambda logs to a file, as CloudWatch Logs would hold them)."""
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)


def contention_named(handler: _Handler) -> _Handler:
    """A DynamoDB refusal still contended after every retry leaves the handler as
    ``Store.Contended``, which the state machine's Retry names; botocore's own name
    (``TransactionConflictException``…) would reach the Catch and fail the unit's shards."""

    @wraps(handler)
    def named(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except ClientError as exc:
            if is_contention(exc):
                raise StoreContended(f"DynamoDB still contended after every retry: {exc}") from exc
            raise

    return named  # type: ignore[return-value]
