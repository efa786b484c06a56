"""``lighthpc-node``: the console script each compute node runs at boot (user data / systemd).

Configuration comes from the environment only: ``Settings`` (table and bucket names, max
lifetime), the agent's ``LIGHTHPC_NODE_*`` knobs, the standard AWS SDK variables (the local
mode sets ``AWS_ENDPOINT_URL``) and ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` for IMDS.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence

from node_agent import logs, proctree
from node_agent.agent import ExitCode, NodeAgent
from node_agent.config import AgentConfig, ConfigError
from node_agent.identity import ImdsClient, ImdsError
from workflow.aws.services import make_services
from workflow.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    """Run this node's unit attempt to its end; the exit status names the path taken."""
    del argv  # no options: a node is configured by its environment and its tags
    proctree.die_with_parent()  # local pool only: a node outlives no CLI (no-op on AWS)
    log = logs.configure()
    try:
        config = AgentConfig.from_env()
        imds = ImdsClient()
    except (ConfigError, ImdsError) as exc:
        log.error("invalid node configuration", extra={"error": str(exc)})
        return int(ExitCode.NO_IDENTITY)
    agent = NodeAgent(make_services(Settings.from_env()), imds, config)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: agent.on_sigterm())
    return agent.run()


if __name__ == "__main__":
    raise SystemExit(main())
