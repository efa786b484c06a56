"""One cost model: the same mission records give RsltProc's recorded total and the total
``lighthpc cost`` shows, to the cent and beyond (no AWS: the records are in memory)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cli.remote import mission_cost
from tests.fakes import FakeCloud
from workflow.aggregation import aggregate_mission
from workflow.records import SHARD_PREFIX, UNIT_PREFIX, MissionRecord

MISSION = "m-cost"


class Records:
    """tblMission/tblTrans/S3 of one ended mission, served the way each path reads them."""

    def __init__(self, instance_seconds: dict[str, float], launches: list[int]) -> None:
        self.mission: dict[str, Any] = {
            "missionId": MISSION,
            "status": "RUNNING",
            "params": {"workload": "noop"},
            "sample": {"bucket": "src", "key": "incoming/s.txt"},
            "createdAt": 0.0,
            "shards": len(launches),
            "instanceSeconds": dict(instance_seconds),
        }
        self.units = [
            {
                "missionId": MISSION,
                "shardId": f"{UNIT_PREFIX}u{i:04d}",
                "shardFrom": i,
                "shardTo": i,
                "status": "SUCCEEDED",
                "attempt": n,
                "launches": n,
                "capacity": "on-demand" if n > 1 else "spot",
                "instanceType": "c6i.large",
                "launchedAt": 1000.0 * n,
                "finishedAt": 1000.0 * n + 60.0,
            }
            for i, n in enumerate(launches)
        ]
        self.shards = [
            {
                "missionId": MISSION,
                "shardId": f"{SHARD_PREFIX}s{i:06d}",
                "unitId": f"u{i:04d}",
                "index": i,
                "start": i,
                "end": i + 1,
                "status": "DONE",
                "attempt": n,
                "resultKey": f"results/s{i:06d}.json",
            }
            for i, n in enumerate(launches)
        ]
        self.objects = {s["resultKey"]: json.dumps({"items": 1}).encode() for s in self.shards} | {
            "incoming/s.txt": b"a\n"
        }

    def cloud(self) -> FakeCloud:
        """The in-memory store and objects both paths read."""
        cloud = FakeCloud()
        cloud.store.create_mission(MissionRecord.from_item(self.mission))
        for item in self.units + self.shards:
            cloud.store.trans.setdefault(MISSION, {})[item["shardId"]] = dict(item)
        for key, body in self.objects.items():
            bucket = "src" if key.startswith("incoming/") else cloud.settings.result_bucket
            cloud.objects.put_bytes(bucket, key, body)
        return cloud


def _both_totals(records: Records, cloud: FakeCloud | None = None) -> tuple[float, float]:
    cloud = cloud or records.cloud()
    rslt_proc = aggregate_mission(MISSION, cloud.ports, started_at=0.0)
    shown = mission_cost(cloud.store, MISSION)
    return rslt_proc.cost.total, shown.total


def test_an_interrupted_spot_attempt_costs_the_same_in_rsltproc_and_lighthpc_cost() -> None:
    """Unit u0000 ran twice: 1,800 s on Spot (interrupted), then 900 s On-Demand. Both paths
    price what the nodes billed; the CLI used to price only the last attempt's launch-to-
    finish time, and its total was lower than the one RsltProc recorded."""
    records = Records({"c6i.large|spot": 1800.0, "c6i.large|on-demand": 900.0}, [2, 1])
    cloud = records.cloud()
    recorded, shown = _both_totals(records, cloud)
    assert shown == recorded > 0
    bill = mission_cost(cloud.store, MISSION)
    assert bill.recorded == round(recorded, 6)
    assert bill.instance_hours == {("c6i.large", "spot"): 0.5, ("c6i.large", "on-demand"): 0.25}


def test_each_node_bills_its_own_key_and_the_cost_sums_them_by_type_and_capacity() -> None:
    """Two Spot nodes and one On-Demand node of one type: priced as 1,800 s + 900 s."""
    per_node = {
        "c6i.large|spot|i-1": 1000.0,
        "c6i.large|spot|i-2": 800.0,
        "c6i.large|on-demand|i-3": 900.0,
    }
    bill = mission_cost(Records(per_node, [2, 1]).cloud().store, MISSION)
    assert bill.instance_hours == {("c6i.large", "spot"): 0.5, ("c6i.large", "on-demand"): 0.25}


def test_an_instance_type_without_a_price_is_named_not_guessed() -> None:
    records = Records({"c6i.large|spot": 60.0, "zz.top|spot": 600.0}, [1])
    recorded, shown = _both_totals(records)
    assert shown == recorded
    assert mission_cost(records.cloud().store, MISSION).unpriced == ("zz.top",)


@settings(max_examples=20, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["c6i.large|spot", "c7i.large|on-demand", "m6i.large|spot"]),
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
    ),
    st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=4),
)
def test_any_mission_has_one_total(seconds: dict[str, float], launches: list[int]) -> None:
    recorded, shown = _both_totals(Records(seconds, launches))
    assert shown == recorded
