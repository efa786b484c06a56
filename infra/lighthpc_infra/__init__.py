"""The lightHPC-SFN CDK app: one construct per concern, wired in ``LightHpcStack``."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from lighthpc_infra.config import InfraConfig
from lighthpc_infra.nag import add_suppressions
from lighthpc_infra.stack import PROJECT_ROOT, LightHpcStack

__all__ = ["InfraConfig", "LightHpcStack", "build_stack"]


def build_stack(
    app: cdk.App, *, config: InfraConfig | None = None, env: cdk.Environment | None = None
) -> LightHpcStack:
    """The stack with its cdk-nag checks (AwsSolutions) and its reasoned suppressions."""
    config = config or InfraConfig.from_context(app.node)
    stack = LightHpcStack(app, config.stack_name, config=config, project_root=PROJECT_ROOT, env=env)
    cdk.Tags.of(stack).add("project", "lighthpc-sfn")
    add_suppressions(stack)
    cdk.Aspects.of(stack).add(AwsSolutionsChecks(verbose=True))
    return stack
