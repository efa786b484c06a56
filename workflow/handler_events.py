"""The events of lightScheduler and RsltProc, parsed once into types.

``plan`` carries the execution input untouched (``workflow.request`` judges it, so any
shape, even ``[1,2,3]``, goes down the rejection path as ``Mission.InvalidInput``);
``verify`` and ``unitFailed`` carry the ids the ASL passes. A malformed event is a named
error, never an ``AttributeError``/``KeyError`` from deep inside.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workflow.errors import MissionInvalidInput, SchedulerInvalidEvent
from workflow.params import describe_validation_error

# Ids are ours (hex digests, ``u0001``): a long or odd one is a forgery, refused before use.
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
ARN_MAX = 2048


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class PlanEvent(_Event):
    action: Literal["plan"]
    execution_arn: str = Field("", alias="executionArn", max_length=ARN_MAX)
    event: Any = None


class UnitFailedEvent(_Event):
    action: Literal["unitFailed"]
    mission_id: str = Field(alias="missionId", pattern=ID_PATTERN)
    unit_id: str = Field(alias="unitId", pattern=ID_PATTERN)
    error: Mapping[str, Any] | None = None

    def as_payload(self) -> dict[str, Any]:
        """The mapping ``record_unit_failure`` reads, with ids known to be strings."""
        return {"missionId": self.mission_id, "unitId": self.unit_id, "error": self.error or {}}


class VerifyEvent(_Event):
    action: Literal["verify"]
    mission_id: str = Field(alias="missionId", pattern=ID_PATTERN)
    unit_id: str = Field(alias="unitId", pattern=ID_PATTERN)
    early_successes: int = Field(0, alias="earlySuccesses", ge=0, le=1000, strict=True)

    def as_payload(self) -> dict[str, Any]:
        """The mapping ``verify_unit`` reads, with ids known to be strings."""
        return {
            "missionId": self.mission_id,
            "unitId": self.unit_id,
            "earlySuccesses": self.early_successes,
        }


_M = TypeVar("_M", bound=_Event)


class AggregateEvent(_Event):
    """RsltProc's input, built by the ASL's AggregateResults state."""

    mission_id: str = Field(alias="missionId", pattern=ID_PATTERN)
    execution_arn: str = Field("", alias="executionArn", max_length=ARN_MAX)
    execution_start_time: str | None = Field(None, alias="executionStartTime", max_length=64)

    @property
    def start_timestamp(self) -> float | None:
        """The execution's start as a POSIX time; None when absent or not ISO 8601."""
        if self.execution_start_time is None:
            return None
        try:
            stamp = datetime.fromisoformat(self.execution_start_time.replace("Z", "+00:00"))
        except ValueError:
            return None
        return stamp.timestamp()


ACTIONS = frozenset({"plan", "launch", "verify", "unitFailed"})


def event_action(event: object) -> str:
    """The event's action; ``Scheduler.InvalidEvent`` unless it is one lightScheduler has."""
    if not isinstance(event, Mapping):
        raise SchedulerInvalidEvent(
            f"lightScheduler event must be a JSON object, got {type(event).__name__}"
        )
    action = event.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        shown = repr(action)[:64]
        raise SchedulerInvalidEvent(
            f"unknown lightScheduler action {shown}; expected one of {', '.join(sorted(ACTIONS))}"
        )
    return action


def parse_plan(event: Mapping[str, Any]) -> PlanEvent:
    return _parse(PlanEvent, event)


def parse_unit_failed(event: Mapping[str, Any]) -> UnitFailedEvent:
    return _parse(UnitFailedEvent, event)


def parse_verify(event: Mapping[str, Any]) -> VerifyEvent:
    return _parse(VerifyEvent, event)


def parse_aggregate(event: object) -> AggregateEvent:
    """RsltProc's event; a malformed one is ``Mission.InvalidInput`` (as it always was: the
    ASL's AggregateResults Catch sends any error to the mission-error notice)."""
    if not isinstance(event, Mapping):
        raise MissionInvalidInput(
            f"RsltProc event must be a JSON object, got {type(event).__name__}"
        )
    try:
        return AggregateEvent.model_validate(event)
    except ValidationError as exc:
        raise MissionInvalidInput(describe_validation_error(exc, "event")) from exc


def _parse(model: type[_M], event: Mapping[str, Any]) -> _M:
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise SchedulerInvalidEvent(describe_validation_error(exc, "event")) from exc
