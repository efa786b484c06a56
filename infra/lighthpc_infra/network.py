"""Where the nodes run: a given VPC (context ``vpcId``) or a new one without NAT."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from constructs import Construct

FLOW_LOG_PREFIX = "vpc-flow-logs/"


class Network(Construct):
    """``vpc`` and the ``subnet_ids`` nodes launch in.

    New VPC: public subnets only (no NAT gateway to pay for between missions), S3 and
    DynamoDB gateway endpoints (the bulk of a node's traffic stays off the internet) and
    flow logs to the access-log bucket. Existing VPC: ``subnet_ids`` if given, else its
    private subnets with egress, else its public subnets.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_id: str | None,
        subnet_ids: Sequence[str],
        flow_log_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.created = vpc_id is None
        if vpc_id is None:
            self.vpc: ec2.IVpc = ec2.Vpc(
                self,
                "Vpc",
                max_azs=3,
                nat_gateways=0,
                subnet_configuration=[
                    ec2.SubnetConfiguration(
                        name="nodes", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20
                    )
                ],
                gateway_endpoints={
                    "S3": ec2.GatewayVpcEndpointOptions(
                        service=ec2.GatewayVpcEndpointAwsService.S3
                    ),
                    "DynamoDB": ec2.GatewayVpcEndpointOptions(
                        service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                    ),
                },
                flow_logs={
                    "ToS3": ec2.FlowLogOptions(
                        destination=ec2.FlowLogDestination.to_s3(flow_log_bucket, FLOW_LOG_PREFIX),
                        traffic_type=ec2.FlowLogTrafficType.ALL,
                    )
                },
            )
            self.subnet_ids = self._ids(ec2.SubnetType.PUBLIC)
            return
        self.vpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=vpc_id)
        if subnet_ids:
            self.subnet_ids = list(subnet_ids)
        elif self.vpc.private_subnets:
            self.subnet_ids = self._ids(ec2.SubnetType.PRIVATE_WITH_EGRESS)
        else:
            self.subnet_ids = self._ids(ec2.SubnetType.PUBLIC)

    def _ids(self, subnet_type: ec2.SubnetType) -> list[str]:
        return list(self.vpc.select_subnets(subnet_type=subnet_type).subnet_ids)
