"""AWS-parity fixes for Step Functions limits and Distributed Map semantics.

moto is kinder than AWS here, so a local mission could pass where the deployed one fails:

- 11 ``map_tolerated_failure``: moto's Distributed Map parses ``ToleratedFailureCount`` /
  ``ToleratedFailurePercentage`` but never applies them, and a failed child only leaves a
  ``null`` in the results: the Map Run always succeeds. On AWS the tolerance defaults to 0,
  so one failed (or timed-out) child fails the Map Run with
  ``States.ExceedToleratedFailureThreshold`` and the running children are aborted
  (DESIGN §6.6, §10; AWS Step Functions guide, "Tolerated failure threshold for Distributed
  Map state": failed % = (failed + timed out) / total items).
- 14 ``tolerated_failure_percentage_integer``: moto's ASL grammar takes only a decimal
  ``ToleratedFailurePercentage`` and refuses the definition when it is an integer such as
  ``100`` (AWS's own language service requires an integer there). The definition is handed to
  moto's parser with such integers written as decimals; nothing else in it changes.
"""

from __future__ import annotations

import datetime
import importlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Final

from localcloud.moto_compat.machinery import Fix, Impl, Patch

ASL_PARSER: Final = "moto.stepfunctions.parser.asl.parse.asl_parser:AmazonStateLanguageParser"
_MAP_PKG: Final = "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration"
_ERROR_NAME_PKG: Final = "moto.stepfunctions.parser.asl.component.common.error_name"
_TOLERANCE_ATTR: Final = "_lighthpc_tolerance"
_DECLARED_ATTR: Final = "_lighthpc_tolerance_declared"
_STATE_MAP: Final = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map:StateMap"
)

EXCEED_TOLERATED_FAILURE_THRESHOLD: Final = "States.ExceedToleratedFailureThreshold"
THRESHOLD_CAUSE: Final = "The specified tolerated failure threshold was exceeded"


# ------------------------------------------------------ 11. Map tolerated failure


@dataclass
class MapRunTolerance:
    """The failure budget of one Map Run and the children it still has running."""

    total_items: int
    tolerated_count: int | None  # None: not declared
    tolerated_percentage: float | None
    failed: int = 0
    exceeded: bool = False
    running: set[Any] = field(default_factory=set)  # the child executions' environments
    lock: threading.Lock = field(default_factory=threading.Lock)

    def over_threshold(self) -> bool:
        """AWS: the Map Run fails when a declared threshold is exceeded (not reached);
        with neither declared the tolerance is 0, so the first failure fails it."""
        if self.tolerated_count is None and self.tolerated_percentage is None:
            return self.failed > 0
        percentage = 100.0 * self.failed / max(1, self.total_items)
        over_count = self.tolerated_count is not None and self.failed > self.tolerated_count
        over_percentage = (
            self.tolerated_percentage is not None and percentage > self.tolerated_percentage
        )
        return over_count or over_percentage

    def record_failure(self) -> bool:
        """Count one failed child; True for the failure that crosses the threshold."""
        with self.lock:
            self.failed += 1
            if self.exceeded or not self.over_threshold():
                return False
            self.exceeded = True
            return True


def _wrap_from_state_props(inner: Impl) -> Impl:
    tolerated = importlib.import_module(
        "moto.stepfunctions.parser.asl.component.state.exec.state_map.tolerated_failure"
    )

    def from_state_props(self: Any, state_props: Any) -> None:
        """Note which thresholds the state declares: moto fills both with 0 otherwise."""
        inner(self, state_props)
        declared = (
            state_props.get(tolerated.ToleratedFailureCountDecl) is not None,
            state_props.get(tolerated.ToleratedFailurePercentageDecl) is not None,
        )
        setattr(self.iteration_component, _DECLARED_ATTR, declared)

    return from_state_props


def _wrap_map_run(inner: Impl) -> Impl:
    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        """Give the Map Run its failure budget before the workers start."""
        items = env.stack[-1] if env.stack else []
        count_declared, percentage_declared = getattr(self, _DECLARED_ATTR, (False, False))
        tolerance = MapRunTolerance(
            total_items=len(items) if isinstance(items, list) else 0,
            tolerated_count=(int(eval_input.tolerated_failure_count) if count_declared else None),
            tolerated_percentage=(
                float(eval_input.tolerated_failure_percentage) if percentage_declared else None
            ),
        )
        setattr(eval_input.map_run_record, _TOLERANCE_ATTR, tolerance)
        inner(self, env, eval_input)

    return _map_run


def _threshold_exceeded(env: Any) -> Exception:
    api = importlib.import_module("moto.stepfunctions.parser.api")
    failure = importlib.import_module(f"{_ERROR_NAME_PKG}.failure_event")
    states_name = importlib.import_module(f"{_ERROR_NAME_PKG}.states_error_name")
    name_type = importlib.import_module(f"{_ERROR_NAME_PKG}.states_error_name_type")
    event_detail = importlib.import_module("moto.stepfunctions.parser.asl.eval.event.event_detail")
    typ = name_type.StatesErrorNameType.StatesExceedToleratedFailureThreshold
    return failure.FailureEventException(  # type: ignore[no-any-return]
        failure_event=failure.FailureEvent(
            env=env,
            error_name=states_name.StatesErrorName(typ=typ),
            event_type=api.HistoryEventType.ExecutionFailed,
            event_details=event_detail.EventDetails(
                executionFailedEventDetails=api.ExecutionFailedEventDetails(
                    error=typ.to_name(), cause=THRESHOLD_CAUSE
                )
            ),
        )
    )


def _abort(children: list[Any]) -> None:
    """Stop the children still running, as AWS aborts them when the Map Run fails."""
    now = datetime.datetime.now(tz=datetime.UTC)
    for child in children:
        child.set_stop(
            stop_date=now, cause=THRESHOLD_CAUSE, error=EXCEED_TOLERATED_FAILURE_THRESHOLD
        )


def _wrap_eval_job(inner: Impl) -> Impl:
    program_state = importlib.import_module("moto.stepfunctions.parser.asl.eval.program_state")

    def _eval_job(self: Any, env: Any, job: Any) -> None:
        """Count a failed child against the tolerance; past it, fail the Map Run."""
        tolerance: MapRunTolerance | None = getattr(self._map_run_record, _TOLERANCE_ATTR, None)
        if tolerance is None:
            inner(self, env, job)
            return
        with tolerance.lock:
            tolerance.running.add(env)
        try:
            inner(self, env, job)
        finally:
            with tolerance.lock:
                tolerance.running.discard(env)
        if isinstance(env.program_state(), program_state.ProgramEnded):
            return
        if tolerance.record_failure():
            with tolerance.lock:
                children = list(tolerance.running)
            _abort(children)
            self._map_run_record.execution_counter.aborted.offset(len(children))
            job.job_output = _threshold_exceeded(env)  # the pool closes and fails the Map Run

    return _eval_job


MAP_TOLERATED_FAILURE = Fix(
    name="map_tolerated_failure",
    design_ref="DESIGN §6.6, §10 (Distributed Map tolerance 0 % by default)",
    description=(
        "A Distributed Map Run fails with States.ExceedToleratedFailureThreshold once its "
        "failed or timed-out children exceed ToleratedFailureCount/Percentage (default 0), "
        "and aborts the children still running; moto ignored the tolerance and succeeded."
    ),
    patches=(
        Patch(_STATE_MAP, "from_state_props", _wrap_from_state_props, ("self", "state_props")),
        Patch(
            f"{_MAP_PKG}.distributed_iteration_component:DistributedIterationComponent",
            "_map_run",
            _wrap_map_run,
            ("self", "env", "eval_input"),
        ),
        Patch(
            f"{_MAP_PKG}.itemprocessor.distributed_item_processor_worker:"
            "DistributedItemProcessorWorker",
            "_eval_job",
            _wrap_eval_job,
            ("self", "env", "job"),
        ),
    ),
)


# ------------------------------------- 14. integer ToleratedFailurePercentage


_PERCENTAGE_KEY: Final = "ToleratedFailurePercentage"


def decimal_percentages(node: Any) -> bool:
    """Turn integer ``ToleratedFailurePercentage`` values into floats, in place; True if any."""
    changed = False
    if isinstance(node, dict):
        value = node.get(_PERCENTAGE_KEY)
        if isinstance(value, int) and not isinstance(value, bool):
            node[_PERCENTAGE_KEY] = float(value)
            changed = True
        for child in node.values():
            changed = decimal_percentages(child) or changed
    elif isinstance(node, list):
        for child in node:
            changed = decimal_percentages(child) or changed
    return changed


def _wrap_parse(inner: Impl) -> Impl:
    def parse(definition: str) -> Any:
        try:
            tree = json.loads(definition)
        except (TypeError, ValueError):
            return inner(definition)  # moto reports the syntax error itself
        return inner(json.dumps(tree) if decimal_percentages(tree) else definition)

    return parse


TOLERATED_FAILURE_PERCENTAGE_INTEGER = Fix(
    name="tolerated_failure_percentage_integer",
    design_ref="AWS ASL: ToleratedFailurePercentage is an integer 0-100",
    description=(
        "moto's grammar refuses an integer ToleratedFailurePercentage (AWS accepts 100, its "
        "language service requires an integer); the parser sees it as a decimal."
    ),
    patches=(Patch(ASL_PARSER, "parse", _wrap_parse, ("definition",)),),
)
