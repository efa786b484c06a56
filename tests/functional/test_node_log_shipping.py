"""The node's log shipper against the local cloud's CloudWatch Logs, under the node role."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from localcloud.emulator import EmbeddedCloud
from localcloud.iam import principal_key
from localcloud.stack import LocalStack
from node_agent.log_shipping import LogEvent, LogShipper, ShippingHandler
from node_agent.log_shipping import log as shipping_log
from tests.waiting import wait_for

STREAM = "m-ship/u0001/1/i-0ship"


def _now_ms() -> int:
    """CloudWatch Logs refuses events older than 14 days: the tests log at the current time."""
    return int(time.time() * 1000)


def _logs(cloud: EmbeddedCloud, key: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=key,
        aws_secret_access_key="testing",
        region_name=cloud.region,
    )
    return session.client("logs", endpoint_url=cloud.endpoint_url)


def _messages(cloud: EmbeddedCloud, group: str, prefix: str) -> list[str]:
    pages = (
        cloud.client("logs")
        .get_paginator("filter_log_events")
        .paginate(logGroupName=group, logStreamNamePrefix=prefix)
    )
    return [e["message"] for page in pages for e in page["events"]]


@pytest.fixture
def node_logs(cloud: EmbeddedCloud) -> Any:
    return _logs(cloud, principal_key("node"))


@pytest.fixture
def root_handler() -> Iterator[list[logging.Handler]]:
    """Handlers added to the root logger in a test, removed after it."""
    added: list[logging.Handler] = []
    yield added
    for handler in added:
        logging.getLogger().removeHandler(handler)


def test_shipped_lines_come_back_whole_and_in_order_across_many_batches(
    cloud: EmbeddedCloud, stack: LocalStack, node_logs: Any
) -> None:
    group = stack.settings.node_log_group
    shipper = LogShipper(node_logs, group, lambda: STREAM, max_queued=20_000, interval=0.05)
    start = _now_ms()
    lines = [f"line {i} " + "x" * (150_000 if i % 997 == 0 else 40) for i in range(12_000)]
    for i, line in enumerate(lines):
        assert shipper.offer(LogEvent(start + i // 7, line))
    shipper.start().close(timeout=60)
    assert shipper.dropped == 0 and shipper.shipped == len(lines)
    assert _messages(cloud, group, "m-ship/") == lines  # 12,000 lines: more than one batch


def test_lines_dropped_while_shipping_failed_are_counted_once_it_recovers(
    cloud: EmbeddedCloud,
    stack: LocalStack,
    root_handler: list[logging.Handler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    del stack
    group = "/lighthpc/test/created-late"
    admin = cloud.client("logs")
    shipper = LogShipper(admin, group, lambda: STREAM, max_queued=50, interval=0.05)
    handler = ShippingHandler(shipper)
    # On the root logger, as on a node; but only the shipper's own records: another test's
    # execution still ending in this worker's background threads must not join the stream.
    handler.addFilter(lambda record: record.name == shipping_log.name)
    logging.getLogger().addHandler(handler)
    root_handler.append(handler)
    accepted = sum(shipper.offer(LogEvent(_now_ms(), f"early {i}")) for i in range(200))
    assert (accepted, shipper.dropped) == (50, 150)
    shipper.start()
    try:
        wait_for(
            lambda: [r for r in caplog.records if r.getMessage() == "node log lines not shipped"],
            20,
            "CreateLogStream refused: the group does not exist yet",
        )
        admin.create_log_group(logGroupName=group)
        wait_for(lambda: shipper.shipped >= 52, 20, "the queued lines and the two notices")
    finally:
        shipper.close(timeout=10)
    shipped = _messages(cloud, group, "m-ship/")
    assert shipped[:50] == [f"early {i}" for i in range(50)]
    notices = [json.loads(m) for m in shipped[50:]]
    assert [n["message"] for n in notices] == [
        "node log lines not shipped",
        "node log lines were dropped",
    ]
    assert notices[1]["droppedLines"] == 150
    admin.delete_log_group(logGroupName=group)


def _refused(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    return str(refused.value.response["Error"]["Code"])


def test_the_node_role_ships_only_to_the_nodes_group_and_reads_nothing(
    cloud: EmbeddedCloud, stack: LocalStack, node_logs: Any
) -> None:
    group = stack.settings.node_log_group
    other = "/lighthpc/test/not-the-nodes"
    cloud.client("logs").create_log_group(logGroupName=other)
    cloud.client("logs").create_log_stream(logGroupName=other, logStreamName=STREAM)
    events = [{"timestamp": _now_ms(), "message": "hello"}]
    try:
        node_logs.create_log_stream(logGroupName=group, logStreamName=STREAM)
        node_logs.put_log_events(logGroupName=group, logStreamName=STREAM, logEvents=events)
        denied = "AccessDeniedException"
        put_other = {"logGroupName": other, "logStreamName": STREAM, "logEvents": events}
        assert _refused(node_logs.put_log_events, **put_other) == denied
        assert _refused(node_logs.create_log_stream, logGroupName=other, logStreamName="s") == (
            denied
        )
        assert _refused(node_logs.create_log_group, logGroupName="/lighthpc/test/new") == denied
        assert _refused(node_logs.filter_log_events, logGroupName=group) == denied
        assert _refused(node_logs.delete_log_stream, logGroupName=group, logStreamName=STREAM) == (
            denied
        )
    finally:
        cloud.client("logs").delete_log_group(logGroupName=other)
    assert _messages(cloud, group, "m-ship/") == ["hello"]
