"""Synthesize the CDK app in-process, once per session (synth takes seconds, not ms).

``aws:cdk:bundling-stacks`` is ``[]`` (``offline_context``): no asset is bundled, so pip
never runs and no AWS account is needed. The synth time and resource count are printed in
the terminal summary.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"
VPC_ID = "vpc-0abc12345def67890"
ACCOUNT, REGION = "123456789012", "eu-west-1"
PRIVATE_SUBNETS = ("subnet-0aaa1111bbbb2222c", "subnet-0ccc3333dddd4444e")
_REPORT: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    del config
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    if str(INFRA) not in sys.path:
        sys.path.insert(0, str(INFRA))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _REPORT:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The default stack (cdk.json's context, a new VPC, env-agnostic)."""
    from lighthpc_infra.synthesis import offline_context, synthesize

    result = synthesize(offline_context(), outdir=tmp_path_factory.mktemp("cdk-default"))
    _REPORT.append(
        f"infra: default stack synthesized in {result.seconds:.1f} s, "
        f"{result.resource_count} resources"
    )
    return result


def vpc_lookup_context() -> dict[str, Any]:
    """What ``cdk.context.json`` holds after the CLI looked the VPC up (no account here)."""
    key = (
        f"vpc-provider:account={ACCOUNT}:filter.vpc-id={VPC_ID}:region={REGION}"
        ":returnAsymmetricSubnets=true"
    )

    def subnet(sid: str, cidr: str, az: str) -> dict[str, str]:
        return {
            "subnetId": sid,
            "cidr": cidr,
            "availabilityZone": az,
            "routeTableId": sid.replace("subnet-", "rtb-"),
        }

    return {
        key: {
            "vpcId": VPC_ID,
            "vpcCidrBlock": "10.1.0.0/16",
            "ownerAccountId": ACCOUNT,
            "availabilityZones": [],
            "subnetGroups": [
                {
                    "name": "Private",
                    "type": "Private",
                    "subnets": [
                        subnet(PRIVATE_SUBNETS[0], "10.1.0.0/20", f"{REGION}a"),
                        subnet(PRIVATE_SUBNETS[1], "10.1.16.0/20", f"{REGION}b"),
                    ],
                },
                {
                    "name": "Public",
                    "type": "Public",
                    "subnets": [subnet("subnet-0eee5555ffff6666a", "10.1.32.0/20", f"{REGION}a")],
                },
            ],
        }
    }


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every optional knob turned: existing VPC, e-mail, AMI parameter, Python 3.12, ..."""
    import aws_cdk as cdk
    from lighthpc_infra.synthesis import offline_context, synthesize

    context = offline_context(
        **vpc_lookup_context(),
        vpcId=VPC_ID,
        notifyEmail="ops@example.org",
        amiSsmParameter="/golden/lighthpc-node-ami",
        lambdaPython="3.12",
        logExecutionData="true",  # -c values arrive as strings
        retainData="false",
        apiCloudWatchRole="false",
        maxNodes="8",
        instanceTypes="c6i.xlarge,m6i.xlarge",
        sourcePrefix="drop/",
    )
    result = synthesize(
        context,
        env=cdk.Environment(account=ACCOUNT, region=REGION),
        outdir=tmp_path_factory.mktemp("cdk-variant"),
    )
    _REPORT.append(
        f"infra: variant stack synthesized in {result.seconds:.1f} s, "
        f"{result.resource_count} resources"
    )
    return result
