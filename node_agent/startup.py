"""What ``lighthpc-node`` (``node_agent.main``) runs: logging, log shipping, the clients and
the agent, wired from the environment."""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from node_agent import logs, proctree
from node_agent.agent import ExitCode, NodeAgent
from node_agent.config import AgentConfig, ConfigError
from node_agent.identity import ImdsClient, ImdsError
from node_agent.log_shipping import LogShipper, ShippingHandler
from workflow.aws.services import make_services
from workflow.settings import Settings


def run_node(argv: Sequence[str] | None = None) -> int:
    """Run this node's unit attempt to its end; the exit status names the path taken."""
    del argv  # no options: a node is configured by its environment and its tags
    proctree.die_with_parent()  # local pool only: a node outlives no CLI (no-op on AWS)
    log = logs.configure()
    settings = Settings.from_env()
    session = boto3.session.Session()  # one session: its clients share the parsed models
    shipper = start_shipping(settings.node_log_group, session)
    try:
        config = AgentConfig.from_env()
        imds = ImdsClient()
    except (ConfigError, ImdsError) as exc:
        log.error("invalid node configuration", extra={"error": str(exc)})
        return int(ExitCode.NO_IDENTITY)
    agent = NodeAgent(make_services(settings, session=session), imds, config)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: agent.on_sigterm())
    try:
        return agent.run()
    finally:
        if shipper is not None:
            shipper.close()  # bounded: FLUSH_SECONDS


# The shipper retries throttling itself; the SDK's own retries would only hold a batch longer.
_LOGS_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=10
)


def start_shipping(group: str, session: boto3.session.Session) -> LogShipper | None:
    """Ship every later line to ``group`` too; no group configured: stderr only, silently."""
    if not group:
        return None
    try:
        client = session.client("logs", config=_LOGS_CLIENT_CONFIG)
    except BotoCoreError as exc:  # no region: the node still works, its lines stay local
        logs.get_logger().warning("node logs not shipped", extra={"error": str(exc)})
        return None
    shipper = LogShipper(client, group).start()
    logging.getLogger().addHandler(ShippingHandler(shipper))
    return shipper
