"""LocalStack as a second Step Functions engine: started per test session, in host mode.

LocalStack runs its own Step Functions interpreter (not moto's). It needs Python >= 3.12, so it
lives in its own virtualenv, ``.venv-localstack`` (built by ``make``, see the Makefile), and runs
as a child process of the test session: ``python -m localstack.runtime.main`` with no Docker,
on a free port on 127.0.0.1, with its files under a temporary directory and only the services
the scenarios use. Its Lambda needs Docker, so the scenarios mock every Task through the Step
Functions Local MockConfigFile given as ``SFN_MOCK_CONFIG``.

``LocalStackServer.stop`` ends the whole process group (SIGTERM, then SIGKILL after a grace
period) and says whether any process of it is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Final

REPO: Final = Path(__file__).parents[2]
VENV: Final = REPO / ".venv-localstack"
PYTHON: Final = VENV / "bin" / "python"
SERVICES: Final = ("stepfunctions", "s3", "sts", "iam", "events")  # events: its status changes
START_TIMEOUT: Final = 120.0  # ~2 s alone, 8 s measured on 2 cores shared with other suites
STOP_GRACE: Final = 30.0  # its SIGTERM shutdown took up to 20 s on the same shared cores
HEALTH_PATH: Final = "/_localstack/health"
# Variables of ours or of the caller's shell that must not reach LocalStack's interpreter.
_DROPPED_ENV: Final = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "SFN_MOCK_CONFIG")


def unavailable_reason() -> str | None:
    """Why LocalStack cannot run here (the only reason its tests skip), or None."""
    if not PYTHON.exists() or not any(VENV.glob(".installed-*")):  # the Makefile's stamp
        return (
            f"{VENV.name} is absent: `make localstack` builds it with Python 3.13 from pyenv "
            "(LocalStack needs Python >= 3.12)"
        )
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def host_mode_env(port: int, root: Path, mock_config: Path) -> dict[str, str]:
    """The environment of a LocalStack that shares nothing with another one on this machine."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _DROPPED_ENV and not k.startswith("AWS_")  # e.g. an endpoint at moto
    }
    env.update(
        # 2026.3.0 takes only the port from it and listens on every interface (twisted.py:
        # "TODO: interface = host?"); our clients use 127.0.0.1.
        GATEWAY_LISTEN=f"127.0.0.1:{port}",
        LOCALSTACK_HOST=f"127.0.0.1:{port}",
        PERSISTENCE="0",
        FILESYSTEM_ROOT=str(root / "filesystem"),  # host mode: lib, cache, tmp and state
        LOCALSTACK_VOLUME_DIR=str(root / "volume"),
        SERVICES=",".join(SERVICES),
        STRICT_SERVICE_LOADING="1",  # a service outside SERVICES is refused, not started
        SFN_MOCK_CONFIG=str(mock_config),
        DNS_ADDRESS="0",  # no DNS server (it would bind port 53)
        SKIP_SSL_CERT_DOWNLOAD="1",  # no download at start: nothing outside is reachable
        DISABLE_EVENTS="1",  # no analytics
        OVERRIDE_IN_DOCKER="0",  # host mode even if the machine looks like a container
    )
    return env


class LocalStackServer:
    """One LocalStack process group; ``endpoint`` once ``start`` returned."""

    def __init__(self, root: Path, mock_config: Path) -> None:
        self.root = root
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "localstack.log"
        self._env = host_mode_env(self.port, root, mock_config)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pgid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid  # start_new_session: the child leads its own group

    def start(self) -> LocalStackServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [str(PYTHON), "-m", "localstack.runtime.main"],
            cwd=self.root,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_healthy(START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def _health(self) -> dict[str, str] | None:
        try:
            with urllib.request.urlopen(self.endpoint + HEALTH_PATH, timeout=2) as resp:
                services: dict[str, str] = json.load(resp)["services"]
                return services
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return None

    def _wait_healthy(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"LocalStack exited with {self._proc.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            services = self._health()
            if services and all(services.get(s) in {"available", "running"} for s in SERVICES):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"LocalStack not healthy after {timeout}s at {self.endpoint}{HEALTH_PATH} "
                    f"(services {services}):\n" + self.log_tail()
                )
            time.sleep(0.2)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def group_alive(self) -> bool:
        """Whether any process of the group is left (signal 0 only checks)."""
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL what is left after the grace period, reap the leader."""
        if self._proc is None:
            return
        self._signal(signal.SIGTERM)
        if not self._wait_gone(STOP_GRACE):
            self._signal(signal.SIGKILL)
            self._wait_gone(10.0)
        self._proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(self.pgid, sig)

    def _wait_gone(self, timeout: float) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._proc.poll()  # reap the leader: a zombie still counts for killpg(pgid, 0)
            if not self.group_alive():
                return True
            time.sleep(0.1)
        return False
