"""``lighthpc-node``: the console script each compute node runs at boot (user data / systemd).

Configuration comes from the environment only: ``Settings`` (table and bucket names, max
lifetime), the agent's ``LIGHTHPC_NODE_*`` knobs, the standard AWS SDK variables (the local
mode sets ``AWS_ENDPOINT_URL``) and ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` for IMDS.

This module imports nothing at load: every shard worker is a spawned interpreter that
re-imports the program's main module (``multiprocessing``'s ``__mp_main__``) before its first
shard, and the agent's imports (boto3, the use cases) cost it ~0.4 s it does not need.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run this node's unit attempt to its end; the exit status names the path taken."""
    from node_agent.startup import run_node  # here, not above: see the module docstring

    return run_node(argv)


if __name__ == "__main__":
    raise SystemExit(main())
