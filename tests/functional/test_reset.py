"""``localcloud.reset``: the session's stack comes back as freshly deployed between tests."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

import pytest

from localcloud.emulator import EmbeddedCloud
from localcloud.reset import reset
from localcloud.stack import DEFAULT_LOCAL_PROFILE, FUNCTIONS, SOURCE_RULE_NAME, LocalStack
from tests.functional.conftest import (
    executions,
    notices,
    start_manual,
    upload_sample,
    wait_execution,
)
from tests.functional.simnode import NodeSim
from tests.waiting import wait_for

SAMPLE = b"a\nb\nc\nd\n"


def _leave_everything_behind(stack: LocalStack) -> str:
    """A rejected mission (a notice), a mission held with its node running, two versions and a
    delete marker of an object, a custom profile and the S3 rule disabled."""
    svc = stack.services
    svc.events.disable_rule(Name=SOURCE_RULE_NAME)
    svc.store.put_profile("default", {"workload": "noop", "heartbeatSeconds": 600}, 0.0)
    svc.store.put_profile("gpu", {"shards": 2}, 0.0)
    wait_execution(stack, start_manual(stack, {}))
    for key in ("incoming/held.txt", "incoming/held.txt", "incoming/gone.txt"):
        upload_sample(stack, key, SAMPLE)
    svc.s3.delete_object(Bucket=stack.settings.source_bucket, Key="incoming/gone.txt")
    held = start_manual(
        stack,
        {
            "input": {"bucket": stack.settings.source_bucket, "key": "incoming/held.txt"},
            "params": {"shards": 2, "maxNodes": 1},
        },
    )
    wait_for(lambda: _instances(stack), 30, "the held mission's node to be launched")
    return held


def _instances(stack: LocalStack) -> list[dict[str, Any]]:
    reservations = stack.services.ec2.describe_instances()["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def _versions(stack: LocalStack, bucket: str) -> list[str]:
    listed = stack.services.s3.list_object_versions(Bucket=bucket)
    return [v["Key"] for v in (*listed.get("Versions", []), *listed.get("DeleteMarkers", []))]


def _items(stack: LocalStack, table: str) -> list[dict[str, Any]]:
    return list(stack.services.ddb.scan(TableName=table)["Items"])


def test_reset_forgets_a_missions_traces_and_the_stack_runs_the_next_one(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    held = _leave_everything_behind(stack)
    settings = stack.settings
    assert stack.services.sfn.describe_execution(executionArn=held)["status"] == "RUNNING"
    assert len(executions(stack)) == 2 and _instances(stack)
    assert _items(stack, settings.trans_table) and len(_items(stack, settings.mission_table)) > 2
    assert len(_versions(stack, settings.source_bucket)) == 4
    assert _versions(stack, settings.result_bucket)  # the held mission's manifest
    assert len(stack.services.store.list_profiles()) == 2

    stack = reset(cloud, stack)

    assert executions(stack) == []
    assert _instances(stack) == []
    assert _items(stack, settings.trans_table) == []
    [profile] = stack.services.store.list_profiles()
    assert (profile.name, dict(profile.params)) == ("default", dict(DEFAULT_LOCAL_PROFILE))
    assert list(stack.services.store.scan_missions()) == []
    assert _versions(stack, settings.source_bucket) == []
    assert _versions(stack, settings.result_bucket) == []
    assert notices(stack) == []
    rule = stack.services.events.describe_rule(Name=SOURCE_RULE_NAME)
    assert rule["State"] == "ENABLED"

    stack.services.store.put_profile(
        "default", {"workload": "noop", "shards": 2, "maxNodes": 1}, 0.0
    )
    with NodeSim(stack.services) as nodes:
        upload_sample(stack, "incoming/after.txt", SAMPLE)  # the S3 rule starts it again
        [started] = wait_for(lambda: executions(stack), 20, "the S3 event to start a mission")
        desc = wait_execution(stack, started["executionArn"])
    assert desc["status"] == "SUCCEEDED", desc
    assert len(nodes.attempts) == 1
    [message] = notices(stack)
    assert "Shards: 2/2 done, 0 failed" in message


def _invoke(cloud: EmbeddedCloud, key: str, payload: Any) -> Any:
    resp = cloud.client("lambda").invoke(FunctionName=FUNCTIONS[key], Payload=json.dumps(payload))
    return json.loads(resp["Payload"].read())


def test_a_handler_override_lasts_until_the_next_reset(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    get_default = {"op": "get", "name": "default"}
    reset(cloud, stack, handlers={"mission_cfg": lambda event, _ctx: {"fake": event["op"]}})
    assert _invoke(cloud, "mission_cfg", get_default) == {"fake": "get"}
    reset(cloud, stack)
    assert _invoke(cloud, "mission_cfg", get_default)["params"] == dict(DEFAULT_LOCAL_PROFILE)


def test_reset_waits_for_a_handler_call_under_way_before_it_wipes(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    """A stopped execution may still be inside a handler: its write must not outlive reset."""
    entered, release = threading.Event(), threading.Event()

    def slow_writer(event: Any, _ctx: Any) -> dict[str, str]:
        entered.set()
        release.wait(10)
        stack.services.store.put_profile("late", {"shards": 1}, 0.0)
        return {"wrote": "late"}

    reset(cloud, stack, handlers={"mission_cfg": slow_writer})
    caller = threading.Thread(target=_invoke, args=(cloud, "mission_cfg", {}), daemon=True)
    caller.start()
    assert entered.wait(10)
    threading.Timer(0.5, release.set).start()
    stack = reset(cloud, stack)
    caller.join(10)
    assert [p.name for p in stack.services.store.list_profiles()] == ["default"]


def test_reset_changes_the_handlers_settings_but_renames_no_resource(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    capped = reset(cloud, stack, settings=replace(stack.settings, max_concurrent_nodes=2))
    assert capped.services.settings.max_concurrent_nodes == 2
    with pytest.raises(ValueError, match="trans_table"):
        reset(cloud, stack, settings=replace(stack.settings, trans_table="tblOther"))
