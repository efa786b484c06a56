"""IAM in the embedded cloud: each principal's calls are held to the statements the CDK app
grants it (``policies.json``, generated from the synthesized template by
``python -m lighthpc_infra.policy_snapshot``). See docs/architecture.md, "IAM in the local
cloud", for what is evaluated and what is not.

``LocalIam`` is owned by ``EmbeddedCloud`` (on unless ``iam=False`` or
``LIGHTHPC_LOCAL_IAM=0``); ``localcloud.stack.deploy`` binds it to the deployed names.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from localcloud.iam.enforce import (
    EmulatorFacts,
    Enforcer,
    Observed,
    Recorder,
    ResolvedPolicies,
    install,
    principal_key,
    uninstall,
)
from localcloud.iam.policy import SNAPSHOT, load_snapshot, resolve
from localcloud.iam.requests import ArnContext

ENV_SWITCH: Final = "LIGHTHPC_LOCAL_IAM"
ENV_POLICY_FILE: Final = "LIGHTHPC_LOCAL_IAM_POLICY"
ENV_DECISIONS: Final = "LIGHTHPC_LOCAL_IAM_DECISIONS"
ENV_SNAPSHOT: Final = "LIGHTHPC_LOCAL_IAM_SNAPSHOT"  # another snapshot (tests: a grant removed)
NODE_PRINCIPAL: Final = "node"
NODE_COMMAND: Final = (sys.executable, "-m", "localcloud.iam.node")
_OFF: Final = {"0", "false", "no", "off"}

__all__ = [
    "ENV_SWITCH",
    "NODE_COMMAND",
    "LocalIam",
    "Observed",
    "enabled_from_env",
    "principal_key",
]


def enabled_from_env(env: Mapping[str, str] | None = None) -> bool:
    """On unless ``LIGHTHPC_LOCAL_IAM`` says 0/false/no/off."""
    value = (os.environ if env is None else env).get(ENV_SWITCH, "1")
    return value.strip().lower() not in _OFF


class LocalIam:
    """The snapshot, resolved to one deployment's names, enforced in this process and in the
    node processes it starts."""

    def __init__(self, snapshot_path: Path | None = None) -> None:
        path = snapshot_path or Path(os.environ.get(ENV_SNAPSHOT) or SNAPSHOT)
        self.snapshot = load_snapshot(path)
        self.workdir = Path(tempfile.mkdtemp(prefix="lighthpc-iam-"))
        self.policy_file = self.workdir / "policies.resolved.json"
        self.recorder = Recorder(sink=self.workdir / "decisions.jsonl")
        self.enforcer: Enforcer | None = None
        self._services: dict[tuple[str, Any], Any] = {}

    @property
    def principals(self) -> list[str]:
        return sorted(self.snapshot["principals"])

    def access_key(self, principal: str) -> str:
        if principal not in self.snapshot["principals"]:
            raise KeyError(f"no principal {principal!r} in the IAM snapshot")
        return principal_key(principal)

    def bind(
        self,
        values: Mapping[str, str],
        arns: ArnContext,
        state_machine_arn: str,
        admin_client: Callable[[str], Any],
    ) -> None:
        """Resolve the placeholders with ``values`` and start enforcing in this process."""
        self.unbind()
        policies = ResolvedPolicies(
            statements=resolve(self.snapshot, values),
            roles={p: str(e["role"]) for p, e in self.snapshot["principals"].items()},
            arns=arns,
            state_machine_arn=state_machine_arn,
        )
        import json

        self.policy_file.write_text(json.dumps(policies.to_json()), encoding="utf-8")
        self.enforcer = Enforcer(
            policies, EmulatorFacts(admin_client, state_machine_arn), recorder=self.recorder
        )
        install(self.enforcer)

    def unbind(self) -> None:
        if self.enforcer is not None:
            uninstall(self.enforcer)
            self.enforcer = None

    def close(self) -> None:
        self.unbind()
        self._services.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def cached(self, principal: str, settings: Any, build: Callable[[], Any]) -> Any:
        """One Services per (principal, settings): a reset does not rebuild clients."""
        key = (principal, settings)
        if key not in self._services:
            self._services[key] = build()
        return self._services[key]

    def node_env(self) -> dict[str, str]:
        """What a node process needs to run as the node role (its command: NODE_COMMAND)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key(NODE_PRINCIPAL),
            ENV_POLICY_FILE: str(self.policy_file),
            ENV_DECISIONS: str(self.recorder.sink),
        }

    def observed(self) -> list[Observed]:
        return self.recorder.observed()
