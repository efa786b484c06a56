"""A node process under the node role: install the enforcer, then run the node agent.

The pool starts ``python -m localcloud.iam.node`` instead of ``python -m node_agent.main``
when IAM is on; the agent itself is unchanged (what runs on AWS carries no emulator).
"""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path

from localcloud import sdk_sessions
from localcloud.iam import ENV_DECISIONS, ENV_POLICY_FILE
from localcloud.iam.enforce import EmulatorFacts, Enforcer, Recorder, ResolvedPolicies, install

ADMIN_KEY = "testing"  # the emulator's account administrator: facts IAM reads itself


def main() -> None:
    sdk_sessions.share_with_every_session()  # the agent's session and the administrator's
    data = json.loads(Path(os.environ[ENV_POLICY_FILE]).read_text(encoding="utf-8"))
    policies = ResolvedPolicies.from_json(data)
    admin = sdk_sessions.session(ADMIN_KEY, ADMIN_KEY, policies.arns.region)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    clients: dict[str, object] = {}

    def admin_client(name: str) -> object:
        if name not in clients:
            clients[name] = admin.client(name, endpoint_url=endpoint)
        return clients[name]

    sink = os.environ.get(ENV_DECISIONS)
    recorder = Recorder(sink=Path(sink) if sink else None)
    install(
        Enforcer(
            policies, EmulatorFacts(admin_client, policies.state_machine_arn), recorder=recorder
        )
    )
    runpy.run_module("node_agent.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
