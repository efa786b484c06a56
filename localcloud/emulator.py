"""The embedded cloud: moto's threaded server with Step Functions execution enabled.

``EmbeddedCloud`` starts ``moto.server.ThreadedMotoServer`` on 127.0.0.1 and a free port,
points ``MOTO_PORT`` at it (moto's Step Functions interpreter calls the other services at
``http://localhost:$MOTO_PORT``), enables state-machine execution and the non-Docker
Lambda backend, applies the compatibility fixes and installs the in-process Lambda
registry. ``stop()`` stops running executions, resets every moto backend, shuts the server
down and restores what ``start()`` changed, so a second cloud in the same process starts
clean. Only one cloud may run at a time in a process (moto's backends are global).
"""

from __future__ import annotations

import copy
import http.client
import json
import logging
import os
import socket
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud import instance_events, moto_compat, sdk_sessions
from localcloud.iam import LocalIam, enabled_from_env
from localcloud.lambda_runtime import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_SECONDS,
    Handler,
    LambdaRegistry,
    create_stub_function,
)
from localcloud.sfn_mock_config import MOCK_CONFIG_WIRING

LOGGER = logging.getLogger(__name__)
# moto warns that ToleratedFailure* "have no effect" each time it parses the definition; with
# fix 13 (map_tolerated_failure) they do, so the warning is false and only drowns real output.
_MOTO_PREPROCESSOR = "moto.stepfunctions.parser.asl.parse.preprocessor"


class _ToleranceHasEffect(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "ToleratedFailure" not in record.getMessage()


_TOLERANCE_HAS_EFFECT = _ToleranceHasEffect()

LOCAL_REGION: Final = "us-east-1"
LOCAL_HOST: Final = "127.0.0.1"
LOCAL_ACCESS_KEY: Final = "testing"
MOTO_PORT_ENV: Final = "MOTO_PORT"
MOTO_CONFIG: Final[dict[str, Any]] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}

_RUNNING_LOCK = threading.Lock()
_RUNNING: list[EmbeddedCloud] = []


def free_port(host: str = LOCAL_HOST) -> int:
    """A TCP port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedCloud:
    """A local AWS (moto) that runs state machines and dispatches Lambdas in-process."""

    def __init__(
        self, *, region: str = LOCAL_REGION, apply_compat: bool = True, iam: bool | None = None
    ) -> None:
        """``iam``: enforce the deployed grants (default: on unless ``LIGHTHPC_LOCAL_IAM=0``)."""
        self.region = region
        self.apply_compat = apply_compat
        self.iam_enabled = enabled_from_env() if iam is None else iam
        self.iam: LocalIam | None = None  # created at start, bound to names by deploy()
        self.lambdas = LambdaRegistry()
        self.port = 0
        self._server: Any = None
        self._saved_moto_port: tuple[str | None] | None = None  # (value,) once saved
        self._saved_user_config: dict[str, Any] = {}
        self._applied_fixes: list[moto_compat.Fix] = []
        self._saved_werkzeug_level: int | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("EmbeddedCloud is not started")
        return f"http://{LOCAL_HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> EmbeddedCloud:
        from moto.server import ThreadedMotoServer

        with _RUNNING_LOCK:
            if _RUNNING:
                raise RuntimeError("an EmbeddedCloud is already running in this process")
            _RUNNING.append(self)
        try:
            self.port = free_port()
            self._saved_moto_port = (os.environ.get(MOTO_PORT_ENV),)
            os.environ[MOTO_PORT_ENV] = str(self.port)
            self._saved_user_config = _snapshot_user_config()
            werkzeug_logger = logging.getLogger("werkzeug")
            self._saved_werkzeug_level = werkzeug_logger.level
            werkzeug_logger.setLevel(logging.WARNING)  # no access-log line per request
            logging.getLogger(_MOTO_PREPROCESSOR).addFilter(_TOLERANCE_HAS_EFFECT)  # once
            self._server = ThreadedMotoServer(ip_address=LOCAL_HOST, port=self.port, verbose=False)
            self._server.start()
            self._post("/moto-api/reset", None)
            self._post("/moto-api/config", MOTO_CONFIG)
            if self.apply_compat:
                self._apply_compat()
            self.lambdas.install()
            instance_events.INSTANCE_CHANGES.apply()  # the pool is told, not polled
            if self.iam_enabled:
                self.iam = LocalIam()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop executions, reset moto, stop the server, undo what start() changed."""
        try:
            self._stop_server()
        finally:
            self._restore_process_state()
            with _RUNNING_LOCK:
                if self in _RUNNING:
                    _RUNNING.remove(self)

    def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        try:
            self._stop_running_executions(server)
            self.lambdas.wait_for_async(timeout=5.0)
            self._post("/moto-api/reset", None)
        finally:
            server.stop()
            server._server.server_close()  # moto leaves the listening socket open

    def _restore_process_state(self) -> None:
        if self.iam is not None:
            self.iam.close()
            self.iam = None
        self.lambdas.uninstall()
        instance_events.INSTANCE_CHANGES.revert()
        for fix in reversed(self._applied_fixes):
            fix.revert()
        self._applied_fixes = []
        _restore_user_config(self._saved_user_config)
        self._saved_user_config = {}
        if self._saved_moto_port is not None:
            (previous,) = self._saved_moto_port
            if previous is None:
                os.environ.pop(MOTO_PORT_ENV, None)
            else:
                os.environ[MOTO_PORT_ENV] = previous
            self._saved_moto_port = None
        if self._saved_werkzeug_level is not None:
            logging.getLogger("werkzeug").setLevel(self._saved_werkzeug_level)
            self._saved_werkzeug_level = None

    def __enter__(self) -> EmbeddedCloud:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -------------------------------------------------------------------- clients
    @property
    def environment(self) -> dict[str, str]:
        """Environment variables that point an AWS SDK (or a subprocess) at this cloud."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_ACCESS_KEY,
        }

    def client(self, service_name: str, config: Config | None = None) -> Any:
        """A boto3 client for ``service_name`` at this cloud (own session: thread-safe)."""
        # Any: the service name is data, not a literal
        session: Any = sdk_sessions.session(LOCAL_ACCESS_KEY, LOCAL_ACCESS_KEY, self.region)
        return session.client(service_name, endpoint_url=self.endpoint_url, config=config)

    def deploy_function(
        self,
        name: str,
        handler: Handler,
        *,
        timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
        memory_mb: int = DEFAULT_MEMORY_MB,
        environment: Mapping[str, str] | None = None,
    ) -> str:
        """Create the function in moto and register its in-process handler; return its ARN."""
        arn = create_stub_function(
            self.client("lambda"),
            self.client("iam"),
            name,
            timeout_seconds=timeout_seconds,
            memory_mb=memory_mb,
            environment=environment,
        )
        self.lambdas.register(name, handler)
        return arn

    # ------------------------------------------------------------------- internals
    def _apply_compat(self) -> None:
        moto_compat.check_moto_version()
        for fix in (*moto_compat.FIXES, MOCK_CONFIG_WIRING):
            if fix.apply():
                self._applied_fixes.append(fix)

    def _post(self, path: str, body: Mapping[str, Any] | None) -> None:
        connection = http.client.HTTPConnection(LOCAL_HOST, self.port, timeout=30)
        try:
            payload = json.dumps(body) if body is not None else ""
            connection.request(
                "POST", path, body=payload, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        if response.status >= 300:
            raise RuntimeError(f"moto {path} answered HTTP {response.status}")

    def _stop_running_executions(self, server: Any) -> None:
        """Let interpreter threads end instead of waiting on a reset backend."""
        endpoint = f"http://{LOCAL_HOST}:{server.get_host_and_port()[1]}"
        session = sdk_sessions.session(LOCAL_ACCESS_KEY, LOCAL_ACCESS_KEY, self.region)
        sfn: Any = session.client("stepfunctions", endpoint_url=endpoint)
        for page in sfn.get_paginator("list_state_machines").paginate():
            for machine in page["stateMachines"]:
                listed = sfn.list_executions(
                    stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING"
                )
                for execution in listed["executions"]:
                    try:
                        sfn.stop_execution(executionArn=execution["executionArn"])
                    except ClientError as exc:  # it may have ended in between
                        LOGGER.debug("could not stop %s: %s", execution["executionArn"], exc)


def _snapshot_user_config() -> dict[str, Any]:
    from moto.core.config import default_user_config

    return {key: copy.deepcopy(default_user_config.get(key)) for key in MOTO_CONFIG}


def _restore_user_config(saved: Mapping[str, Any]) -> None:
    from moto.core.config import default_user_config

    for key, value in saved.items():
        default_user_config[key] = value  # type: ignore[literal-required]
