"""Performance fixes to moto's Step Functions engine: a definition is parsed once, not per
run (fix 22 of the package's list), and a Task's SDK client is made once, not per call (23).

Found by timing a mission's first steps.
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from typing import Any, Final

from localcloud import sdk_sessions
from localcloud.moto_compat import machinery
from localcloud.moto_compat.machinery import Fix, Impl, Patch
from localcloud.moto_compat.parity_sfn_limits import ASL_PARSER

PARSED_DEFINITIONS: Final = 16  # state machines, each revision a definition of its own


def _wrap_parse(inner: Impl) -> Impl:
    parsed: OrderedDict[tuple[str, int], Any] = OrderedDict()
    lock = threading.Lock()

    def parse(definition: str) -> Any:
        """moto re-parsed the definition with its ANTLR grammar at every StartExecution:
        0.1-0.3 s (the mission's, ~20 states) before the first state ran, on the path of
        every mission. The program it builds keeps no run's state (that lives in the
        run's ``Environment``), and moto already runs one program in many threads: a
        Map's iterations share their processor's states. So one parse serves every run
        of a definition, as long as no fix was applied or reverted since (the key's
        ``machinery.generation``: a fix may shape what the parse builds). A definition
        moto refuses raises, as before, and is not kept."""
        key = (definition, machinery.generation())
        with lock:
            if key in parsed:
                parsed.move_to_end(key)
                return parsed[key]
        program = inner(definition)
        with lock:
            parsed[key] = program
            while len(parsed) > PARSED_DEFINITIONS:
                parsed.popitem(last=False)
        return program

    return parse


SFN_DEFINITION_PARSE_CACHE = Fix(
    name="sfn_definition_parse_cache",
    design_ref="DESIGN §6 (found by timing a mission's first steps)",
    description=(
        "StartExecution reuses the program parsed from the same definition (at "
        "CreateStateMachine or an earlier run) instead of re-parsing it with ANTLR."
    ),
    patches=(Patch(ASL_PARSER, "parse", _wrap_parse, ("definition",)),),
)


# ------------------------------------------------ 23. one SDK client per service, not per Task

_TASK_MODULES: Final = tuple(
    f"moto.stepfunctions.parser.asl.component.state.exec.{name}"
    for name in (
        "state_task.lambda_eval_utils",
        *(
            f"state_task.service.state_task_service_{service}"
            for service in (
                "aws_sdk",
                "batch",
                "dynamodb",
                "ecs",
                "events",
                "glue",
                "sfn",
                "sns",
                "sqs",
                "unsupported",
            )
        ),
        "state_map.item_reader.eval.resource_eval_s3",
        "state_map.result_writer.resource_eval.resource_eval_s3",
    )
)
TASK_CLIENT_POOL_CONNECTIONS: Final = 64  # one client serves every concurrent Task
_TASK_CLIENTS: dict[tuple[Any, ...], Any] = {}
_TASK_CLIENTS_GUARD = threading.Lock()


def _endpoint() -> str | None:
    """Where moto's ``boto_client_for`` points a client: its server, or nowhere when its
    in-process mock intercepts the calls."""
    if importlib.import_module("moto.core.models").botocore_stubber.enabled:
        return None
    return f"http://localhost:{importlib.import_module('moto.settings').moto_server_port()}"


def task_client(region: str, service: str, endpoint: str | None) -> Any:
    """The client moto's ``boto_client_for`` makes (same credentials, endpoint, retries and
    timeouts: ``test_moto_compat_sfn_performance`` compares them), from a session that reads its
    service models through the process's one loader (``sdk_sessions``)."""
    from botocore.config import Config

    timeout = importlib.import_module(
        "moto.stepfunctions.parser.asl.component.common.timeouts.timeout"
    ).TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS
    config = Config(
        parameter_validation=False,
        retries={"max_attempts": 0, "total_max_attempts": 1},
        connect_timeout=timeout,
        read_timeout=timeout,
        max_pool_connections=TASK_CLIENT_POOL_CONNECTIONS,
    )
    session = sdk_sessions.session("ak", "sk", region)
    return session.client(service, endpoint_url=endpoint, config=config)


def _wrap_boto_client_for(_inner: Impl) -> Impl:
    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        """moto made a new client, from boto3's default session, for every Task it ran:
        the mission's first Lambda Task parsed the Lambda model again (~0.15 s, its cold
        start in this process) and every later Task paid 5-10 ms for a client. Clients
        are thread-safe: one per region, service and endpoint serves every Task. moto
        5.2.5 reads no credential from ``state_credentials``; its role is kept in the key
        all the same."""
        endpoint = _endpoint()
        key = (region, service, endpoint, getattr(state_credentials, "role_arn", None))
        with _TASK_CLIENTS_GUARD:
            if key not in _TASK_CLIENTS:
                _TASK_CLIENTS[key] = task_client(region, service, endpoint)
            return _TASK_CLIENTS[key]

    return boto_client_for


SFN_TASK_CLIENT_REUSE = Fix(
    name="sfn_task_client_reuse",
    design_ref="DESIGN §6 (found by timing a mission's first steps)",
    description=(
        "A Task state's SDK client is made once per region, service and endpoint, from a "
        "session sharing the process's parsed models, not once per Task from boto3's own."
    ),
    patches=tuple(
        Patch(module, "boto_client_for", _wrap_boto_client_for, ("region", "service"))
        for module in _TASK_MODULES
    ),
)
