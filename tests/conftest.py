"""Test tiers by directory, and the one embedded cloud that the tests of a session share.

Every test gets the marker of its tier (``tests/<tier>/``): ``make test-fast`` runs
``-m "unit or functional"``.

Starting the embedded cloud and deploying the stack takes 10-15 s; resetting it takes a
fraction of a second (``localcloud.reset``). So the functional and e2e tiers ask for the
session-scoped ``shared_cloud`` and reset it, per test or per module. Only one EmbeddedCloud may
run in a process: before the first test of a module that does not use ``shared_cloud`` (it may
start its own cloud), the shared one is stopped. The modules that use it run first, each whole
and in their usual order, so a session deploys once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from localcloud.emulator import EmbeddedCloud
    from localcloud.stack import LocalStack

TESTS: Final = Path(__file__).parent
TIERS: Final = frozenset({"unit", "functional", "e2e", "infra"})
SHARED_FIXTURE: Final = "shared_cloud"


class SharedCloud:
    """The session's EmbeddedCloud with the stack deployed, started at first use."""

    def __init__(self) -> None:
        self._cloud: EmbeddedCloud | None = None
        self._stack: LocalStack | None = None

    def deployed(self) -> tuple[EmbeddedCloud, LocalStack]:
        if self._cloud is None or self._stack is None:
            from localcloud.emulator import EmbeddedCloud
            from localcloud.stack import deploy

            cloud = EmbeddedCloud().start()
            try:
                self._stack = deploy(cloud)
            except BaseException:
                cloud.stop()
                raise
            self._cloud = cloud
        return self._cloud, self._stack

    def fresh(self, **changes: Any) -> LocalStack:
        """The stack as freshly deployed; ``changes`` go to ``localcloud.reset.reset``."""
        from localcloud.reset import reset

        cloud, stack = self.deployed()
        return reset(cloud, stack, **changes)

    def release(self) -> None:
        cloud, self._cloud, self._stack = self._cloud, None, None
        if cloud is not None:
            cloud.stop()


_SHARED = pytest.StashKey[SharedCloud]()
_USER_FILES = pytest.StashKey[frozenset[str]]()


def _tier(item: pytest.Item) -> str | None:
    try:
        top = item.path.relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return None
    return top if top in TIERS else None


def _uses_shared_cloud(item: pytest.Item) -> bool:
    return isinstance(item, pytest.Function) and SHARED_FIXTURE in item.fixturenames


def _file_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SHARED] = SharedCloud()


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = _tier(item)
        if tier is not None:
            item.add_marker(tier)
    users = {_file_of(item) for item in items if _uses_shared_cloud(item)}
    items.sort(key=lambda item: _file_of(item) not in users)  # stable: files stay whole


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[_USER_FILES] = frozenset(
        _file_of(item) for item in session.items if _uses_shared_cloud(item)
    )


@pytest.hookimpl(tryfirst=True)  # before the item's own fixtures start a cloud
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _file_of(item) not in item.config.stash.get(_USER_FILES, frozenset()):
        item.config.stash[_SHARED].release()


def pytest_sessionfinish(session: pytest.Session) -> None:
    session.config.stash[_SHARED].release()


@pytest.fixture(scope="session")
def shared_cloud(pytestconfig: pytest.Config) -> SharedCloud:
    return pytestconfig.stash[_SHARED]
