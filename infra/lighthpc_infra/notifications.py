"""The mission topic: SNS, encrypted with a customer-managed key, TLS-only."""

from __future__ import annotations

import aws_cdk as cdk
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
        if notify_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(notify_email))
