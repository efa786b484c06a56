"""The embedded cloud with the real stack and a pool of REAL ``lighthpc-node`` processes.

The session's cloud and deployment (``tests/conftest.py``), reset once per module (the tests of
a module share module fixtures such as the library in S3); one node pool per test,
closed at the end of the test so no node process outlives it. When a test fails, the tail of
every node's JSON log is printed: it is the first thing to read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.emulator import EmbeddedCloud
from localcloud.pool import LocalNodePool
from localcloud.stack import LocalStack
from tests.conftest import SharedCloud

# Fast knobs for tests: notices polled every 0.1 s, progress written every 0.2 s per shard.
NODE_ENV = {
    "LIGHTHPC_NODE_POLL_SECONDS": "0.1",
    "LIGHTHPC_NODE_PROGRESS_SECONDS": "0.2",
    "LIGHTHPC_NODE_STOP_GRACE_SECONDS": "30",
}
LOG_TAIL_LINES = 40


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="module")
def stack(shared_cloud: SharedCloud) -> LocalStack:
    return shared_cloud.fresh()


@pytest.fixture(scope="module")
def cloud(shared_cloud: SharedCloud, stack: LocalStack) -> EmbeddedCloud:
    del stack
    return shared_cloud.deployed()[0]


@pytest.fixture
def pool(
    cloud: EmbeddedCloud, stack: LocalStack, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[LocalNodePool]:
    # Two nodes' worth of slots: a frozen (superseded) node keeps its slots while its
    # successor runs, as a real frozen instance would keep its vCPUs.
    nodes = LocalNodePool(
        cloud, stack.settings, env=NODE_ENV, log_dir=tmp_path / "nodes", total_slots=4
    )
    with nodes:
        yield nodes
    if request.node.stash.get(_FAILED, False):
        for handle in nodes.nodes():
            lines = handle.log_path.read_text(errors="replace").splitlines()
            print(f"--- {handle.instance_id} attempt {handle.attempt} exit {handle.returncode}")
            print("\n".join(lines[-LOG_TAIL_LINES:]))
