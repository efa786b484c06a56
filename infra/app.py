#!/usr/bin/env python3
"""CDK entry point (``cdk synth`` / ``cdk deploy`` from this directory; docs/deploy.md)."""

from __future__ import annotations

import os

import aws_cdk as cdk
from lighthpc_infra import build_stack


def main() -> None:
    app = cdk.App()
    # The CDK CLI sets these from the current credentials; a VPC lookup (vpcId) needs them.
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    env = cdk.Environment(account=account, region=region) if account and region else None
    build_stack(app, env=env)
    app.synth()


if __name__ == "__main__":
    main()
