"""One instrumented local noop mission -> its orchestration figures (shared by the scripts).

The figures (events, transitions, Lambda invocations, DynamoDB requests) are counted, not
modelled; ``MODEL_FILE`` keeps the last overhead.py measurement so scale.py and cost.py can
reuse it (they re-measure a small mission when it is absent or ``--remeasure`` is given).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import Observer, log, run_mission, sample_file
from benchmarks.instruments import (
    ChildHistory,
    LambdaCounter,
    ServerCalls,
    parent_history,
    transitions_of,
)

MODEL_FILE = Path(__file__).resolve().parent / "results" / "model.json"


@dataclass
class Instruments:
    children: ChildHistory
    lambdas: LambdaCounter
    server: ServerCalls

    def reset(self) -> None:
        self.children.reset()
        self.lambdas.reset()
        self.server.reset()


def add_revert_fix_option(ap: argparse.ArgumentParser) -> None:
    from localcloud.moto_compat import FIXES_BY_NAME

    ap.add_argument(
        "--revert-fix",
        action="append",
        default=[],
        choices=sorted(FIXES_BY_NAME),
        metavar="FIX",
        help="measure without this moto_compat fix (repeatable), e.g. transaction_item_snapshot",
    )


@contextmanager
def instrumented(session: Any, *, revert_fixes: Sequence[str] = ()) -> Iterator[Instruments]:
    """Hooks on the running session's cloud; removed on exit (before the cloud stops).

    ``revert_fixes`` names moto_compat fixes to measure without (e.g. what a fix is worth)."""
    from localcloud.moto_compat import FIXES_BY_NAME

    with ExitStack() as stack:
        for name in revert_fixes:
            stack.enter_context(FIXES_BY_NAME[name].reverted())
        inst = Instruments(
            children=stack.enter_context(ChildHistory()),
            lambdas=stack.enter_context(LambdaCounter(session.cloud.lambdas)),
            server=stack.enter_context(ServerCalls()),
        )
        yield inst


def noop_params(
    shards: int, *, items_per_shard: int, sleep_ms: int, **extra: Any
) -> dict[str, Any]:
    return {
        "workload": "noop",
        "shards": shards,
        "items": shards * items_per_shard,
        "sleepMs": sleep_ms,
        **extra,
    }


def measure(
    session: Any,
    observer: Observer,
    inst: Instruments,
    params: Mapping[str, Any],
    *,
    on_tick: Callable[[float], None] | None = None,
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """Run one mission and count what it cost the orchestration."""
    inst.reset()
    run = run_mission(session, observer, sample_file(), params, timeout=timeout, on_tick=on_tick)
    time.sleep(0.5)  # let the last node process finish its teardown requests
    parent = parent_history(observer.sfn, run.arn)
    kids = inst.children.summary()
    shards = int(params["shards"])
    units = int(run.mission.get("units") or 0)
    parent_transitions = transitions_of(parent)
    child_transitions = int(kids.get("transitionsTotal", 0))
    invocations = inst.lambdas.total
    ddb_wru = inst.server.ddb_write_units()
    ddb_reads = inst.server.ddb_read_requests()
    reduce = run.mission.get("reduce") or {}
    return {
        "shards": shards,
        "units": units,
        "status": run.status,
        "missionStatus": run.mission.get("status"),
        "wallSeconds": round(run.wall, 3),
        "phases": run.phases,
        "resultItems": reduce.get("items"),
        "expectedItems": params.get("items"),
        "parentEvents": len(parent),
        "parentTransitions": parent_transitions,
        "childExecutions": kids.get("children", 0),
        "childEventsTotal": kids.get("eventsTotal", 0),
        "childEventsPerUnit": _per(kids.get("eventsTotal", 0), units),
        "childEventsPerUnitMax": kids.get("eventsPerChildMax", 0),
        "childTransitionsPerUnit": _per(child_transitions, units),
        "childEventTypes": kids.get("eventTypes", {}),
        "unattributedEvents": kids.get("unattributed", {}),
        "transitionsTotal": parent_transitions + child_transitions,
        "transitionsPerShard": _per(parent_transitions + child_transitions, shards),
        "eventsPerShard": _per(len(parent) + int(kids.get("eventsTotal", 0)), shards),
        "lambdaInvocations": invocations,
        "lambdaByAction": dict(inst.lambdas.counts),
        "lambdaSeconds": round(sum(inst.lambdas.seconds.values()), 3),
        "lambdaSecondsByAction": {k: round(v, 3) for k, v in inst.lambdas.seconds.items()},
        "lambdaErrors": dict(inst.lambdas.errors),
        "lambdaInvocationsPerShard": _per(invocations, shards),
        "ddbWriteUnits": ddb_wru,
        "ddbWriteUnitsPerShard": _per(ddb_wru, shards),
        "ddbReadRequests": ddb_reads,
        "ddbReadRequestsPerShard": _per(ddb_reads, shards),
        "serverCalls": inst.server.snapshot(),
    }


def _per(value: float, n: int) -> float:
    return round(value / n, 4) if n else 0.0


def save_model(figures: Mapping[str, Any]) -> None:
    MODEL_FILE.parent.mkdir(parents=True, exist_ok=True)
    MODEL_FILE.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    log(f"model saved to {MODEL_FILE}")


def load_model() -> dict[str, Any] | None:
    if not MODEL_FILE.is_file():
        return None
    return dict(json.loads(MODEL_FILE.read_text()))


def measure_small(shards: int = 40, units: int = 2) -> dict[str, Any]:
    """A fresh local session and one small instrumented noop mission."""
    from localcloud.session import LocalSession

    log(f"measuring a {shards}-shard noop mission on {units} units")
    with LocalSession(workers=2) as session, instrumented(session) as inst:
        observer = Observer(session)
        params = noop_params(
            shards, items_per_shard=1, sleep_ms=1, maxNodes=units, heartbeatSeconds=30
        )
        return measure(session, observer, inst, params)
