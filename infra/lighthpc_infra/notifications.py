"""The mission topic: SNS, encrypted with a customer-managed key, TLS-only.

CloudWatch alarms of this account publish to it too (the dead-letter alarm): a topic under a
customer-managed key drops an alarm's notice unless the key lets CloudWatch encrypt with it,
and the TLS-only topic policy must let CloudWatch publish.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class Notifications(Construct):
    """``topic`` (mission notices) and its KMS ``key``; an optional e-mail subscription."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        notify_email: str | None,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "TopicKey",
            description="lightHPC-SFN mission topic encryption",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        self.topic = sns.Topic(
            self,
            "Missions",
            display_name="lightHPC missions",
            master_key=self.key,
            enforce_ssl=True,
        )
        self._allow_alarms()
        if notify_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(notify_email))

    def _allow_alarms(self) -> None:
        stack = cdk.Stack.of(self)
        cloudwatch = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        alarms = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name="*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        from_our_alarms = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": alarms},
        }
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[cloudwatch],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # a key policy's resource is the key itself
                conditions=from_our_alarms,
            )
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[cloudwatch],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=from_our_alarms,
            )
        )
