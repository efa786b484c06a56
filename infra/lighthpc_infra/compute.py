"""The compute side: the node role, a security group with no inbound rule, the nodes' log
group, and the launch template whose user data installs the node agent and runs it as a
systemd service.

A node never outlives its work: the agent terminates its instance at the end; if the agent
exits any other way, systemd powers the instance off (shutdown behaviour: terminate); if the
user data fails, the instance powers off; and a ``shutdown`` timer caps its lifetime.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from lighthpc_infra.bundling import node_install_commands
from node_agent.config import ENV_WORK_DIR
from node_agent.liveness import BOOT_BEAT_SECONDS
from workflow.aws.ec2 import TAG_ATTEMPT, TAG_MISSION, TAG_UNIT
from workflow.records import UNIT_PREFIX
from workflow.settings import ENV_NODE_LOG_GROUP, ENV_TRANS_TABLE
from workflow.workloads.command import DEFAULT_WORK_USER

SERVICE_NAME: Final = "lighthpc-node"
INSTALL_DIR: Final = "/opt/lighthpc"
ENV_FILE: Final = "/etc/lighthpc/node.env"
STATE_DIR: Final = "/var/lib/lighthpc"
NODE_PYTHON_PACKAGE: Final = "python3.11"

UNIT_FILE: Final = f"""[Unit]
Description=lightHPC node agent (runs this instance's work unit, then terminates it)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
EnvironmentFile={ENV_FILE}
ExecStart={INSTALL_DIR}/venv/bin/{SERVICE_NAME}
# However the agent ends, the instance ends: shutdown behaviour is "terminate".
ExecStopPost=/usr/bin/systemctl --no-block poweroff
KillSignal=SIGTERM
TimeoutStopSec=110
StateDirectory=lighthpc
Restart=no

[Install]
WantedBy=multi-user.target
"""


BOOT_BEAT_PATH: Final = "/usr/local/bin/lighthpc-boot-beat"
# Beats the attempt's task token from boot until the agent runs (docs/architecture.md, "Node
# start"): only what AL2023 has before any install (bash, curl, python3 of the OS, the AWS CLI).
# Data (tags, token) only ever sits in quoted variables and argv: no command is built from it.
BOOT_BEAT_SCRIPT: Final = f"""#!/bin/bash
set -u
set -a; . {ENV_FILE}; set +a
imds() {{
  local t
  t=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \
    http://169.254.169.254/latest/api/token) || return 1
  curl -sf -H "X-aws-ec2-metadata-token: $t" "http://169.254.169.254/latest/meta-data/$1"
}}
mission=$(imds 'tags/instance/{TAG_MISSION}') || exit 0
unit=$(imds 'tags/instance/{TAG_UNIT}') || exit 0
attempt=$(imds 'tags/instance/{TAG_ATTEMPT}') || exit 0
key=$(python3 -c 'import json, sys; print(json.dumps({{"missionId": {{"S": sys.argv[1]}},
"shardId": {{"S": sys.argv[2]}}}}))' "$mission" "{UNIT_PREFIX}$unit")
out=$(aws dynamodb get-item --table-name "${ENV_TRANS_TABLE}" --key "$key" --consistent-read \
  --projection-expression 'attempt, taskToken' --query '[Item.attempt.N, Item.taskToken.S]' \
  --output text) || exit 0
read -r current token <<<"$out"
[ "$current" = "$attempt" ] || exit 0  # superseded: the token is not this instance's
while aws stepfunctions send-task-heartbeat --task-token "$token" >/dev/null; do
  sleep {BOOT_BEAT_SECONDS:g}
done
"""


def node_user_data(
    *, package: s3_assets.Asset, environment: Mapping[str, str], max_lifetime_seconds: int
) -> ec2.UserData:
    """Install the wheelhouse offline into a venv (uv), write the environment, start the agent."""
    user_data = ec2.UserData.for_linux()
    minutes = max(max_lifetime_seconds // 60, 1)
    env_lines = "\n".join(f"{key}={value}" for key, value in sorted(environment.items()))
    user_data.add_commands(
        "set -euo pipefail",
        "trap 'systemctl --no-block poweroff' ERR  # a node that cannot start is not kept",
        f"shutdown -P +{minutes} 'lightHPC node maximum lifetime reached'",
        f"mkdir -p {shlex.quote(ENV_FILE.rsplit('/', 1)[0])}",
        f"cat > {ENV_FILE} <<'LIGHTHPC_ENV'\n{env_lines}\nLIGHTHPC_ENV",
        f"cat > {BOOT_BEAT_PATH} <<'LIGHTHPC_BEAT'\n{BOOT_BEAT_SCRIPT}LIGHTHPC_BEAT",
        f"chmod 0755 {BOOT_BEAT_PATH}",
        f"{BOOT_BEAT_PATH} & boot_beat=$!  # heartbeats while Python and the package install",
        # `command` shards run as this user, never as root (workflow/workloads/command.py):
        # a system account with no login shell and no password.
        f"id -u {DEFAULT_WORK_USER} >/dev/null 2>&1 || useradd --system --create-home "
        f"--shell /sbin/nologin {DEFAULT_WORK_USER}",
        f"dnf install -y -q {NODE_PYTHON_PACKAGE}",  # no pip: uv installs (bundling.py)
    )
    archive = user_data.add_s3_download_command(
        bucket=package.bucket, bucket_key=package.s3_object_key, local_file=f"{INSTALL_DIR}/pkg.zip"
    )
    user_data.add_commands(
        f"python3 -m zipfile -e {archive} {INSTALL_DIR}/pkg",
        *(
            shlex.join(argv)
            for argv in node_install_commands(
                package_dir=f"{INSTALL_DIR}/pkg",
                venv=f"{INSTALL_DIR}/venv",
                python=NODE_PYTHON_PACKAGE,
            )
        ),
        f"cat > /etc/systemd/system/{SERVICE_NAME}.service <<'LIGHTHPC_UNIT'\n"
        f"{UNIT_FILE}LIGHTHPC_UNIT",
        "systemctl daemon-reload",
        f"systemctl enable --now {SERVICE_NAME}.service",
        'kill "$boot_beat" || true  # the agent heartbeats from here on',
    )
    return user_data


def node_environment(settings_env: Mapping[str, str], region: str) -> dict[str, str]:
    """What the agent reads: the Settings variables, the region, its state directory."""
    env = {key: value for key, value in settings_env.items() if value != ""}
    env.update({"AWS_DEFAULT_REGION": region, "AWS_REGION": region, ENV_WORK_DIR: STATE_DIR})
    return env


@jsii.implements(ec2.IMachineImage)
class FixedImage:
    """One AMI id, as given (context ``amiId``): region-specific, like every AMI id."""

    def __init__(self, image_id: str) -> None:
        self.image_id = image_id

    def get_image(self, scope: Construct) -> ec2.MachineImageConfig:
        del scope
        return ec2.MachineImageConfig(
            image_id=self.image_id,
            os_type=ec2.OperatingSystemType.LINUX,
            user_data=ec2.UserData.for_linux(),
        )


def machine_image(*, ami_id: str | None, ssm_parameter: str | None) -> ec2.IMachineImage:
    """Latest Amazon Linux 2023 (SSM public parameter, resolved at deploy), or an override."""
    if ami_id:
        return FixedImage(ami_id)
    if ssm_parameter:
        return ec2.MachineImage.from_ssm_parameter(ssm_parameter, os=ec2.OperatingSystemType.LINUX)
    return ec2.MachineImage.latest_amazon_linux2023()


class Compute(Construct):
    """``role`` (node instance role), ``security_group``, ``log_group`` (the nodes ship their
    lines there), ``launch_template`` and its ``launch_template_name`` (what lightScheduler
    passes to CreateFleet)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        machine_image: ec2.IMachineImage,
        package: s3_assets.Asset,
        environment: Mapping[str, str],
        max_lifetime_seconds: int,
        volume_gib: int,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        # Unnamed, like the Lambdas' groups: CloudFormation's generated name is new at every
        # stack creation, so a group retained with the data never blocks the next deploy.
        self.log_group = logs.LogGroup(
            self, "NodeLogs", retention=log_retention, removal_policy=removal_policy
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "NodeSecurityGroup",
            vpc=vpc,
            description="lightHPC nodes: no inbound; HTTPS out to AWS APIs and package repos",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and the AL2023 repos"
        )
        self.role = iam.Role(
            self,
            "NodeRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="lightHPC compute node: its mission's tables, buckets and task tokens",
        )
        # Named (CloudFormation has no name attribute to read back): lightScheduler launches by
        # name (Settings.launch_template), as the local mode does.
        template_name = f"{cdk.Stack.of(self).stack_name}-node"
        self.launch_template = ec2.LaunchTemplate(
            self,
            "NodeTemplate",
            launch_template_name=template_name,
            machine_image=machine_image,
            role=self.role,
            security_group=self.security_group,
            user_data=node_user_data(
                package=package,
                environment={**environment, ENV_NODE_LOG_GROUP: self.log_group.log_group_name},
                max_lifetime_seconds=max_lifetime_seconds,
            ),
            http_endpoint=True,
            http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
            http_put_response_hop_limit=1,
            instance_metadata_tags=True,
            instance_initiated_shutdown_behavior=ec2.InstanceInitiatedShutdownBehavior.TERMINATE,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        volume_gib,
                        encrypted=True,
                        delete_on_termination=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                    ),
                )
            ],
        )
        self.launch_template_name = template_name
