"""Buckets and tables: where samples arrive, where results go, where mission state lives."""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from workflow import keys, records
from workflow.records import EXECUTION_INDEX, MISSIONS_INDEX

MISSIONS_PREFIX: Final = "missions/"
# What a node writes (workflow.keys): missions/<id>/shards/… and missions/<id>/checkpoints/….
NODE_WRITE_PATTERNS: Final = (
    f"{MISSIONS_PREFIX}*/shards/*",
    f"{MISSIONS_PREFIX}*/checkpoints/*",
)
NODE_LIST_PREFIX: Final = f"{MISSIONS_PREFIX}*/checkpoints/*"
# S3 lifecycle filters take a key prefix and tags, never a wildcard such as
# ``missions/*/checkpoints/``: checkpoints and shard results are told apart by this tag.
OBJECT_KIND_TAG: Final = keys.OBJECT_KIND_TAG  # the nodes tag what they upload (workflow.keys)
KIND_CHECKPOINT: Final = keys.KIND_CHECKPOINT
KIND_SHARD_RESULT: Final = keys.KIND_SHARD_RESULT
TTL_ATTRIBUTE: Final = records.TTL_ATTRIBUTE  # written by PlanMission on both tables


def _secure_bucket_props(removal_policy: cdk.RemovalPolicy) -> dict[str, object]:
    return {
        "encryption": s3.BucketEncryption.S3_MANAGED,
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "enforce_ssl": True,
        "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        "removal_policy": removal_policy,
    }


class Storage(Construct):
    """Access-log, source and result buckets; ``tblMission`` and ``tblTrans``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        checkpoint_expiration: cdk.Duration,
        intermediate_expiration: cdk.Duration,
        noncurrent_expiration: cdk.Duration,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        secure = _secure_bucket_props(removal_policy)
        self.log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=cdk.Duration.days(365))],
            **secure,  # type: ignore[arg-type]
        )
        self.source_bucket = s3.Bucket(
            self,
            "Source",
            versioned=True,  # a mission pins the sample version it planned
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="s3/source/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=noncurrent_expiration,
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            **secure,  # type: ignore[arg-type]
        )
        # Object Created events go to EventBridge (the rule starts the state machine). Set on
        # the CfnBucket: the L2 ``event_bridge_enabled`` adds a custom-resource Lambda.
        source_cfn = self.source_bucket.node.default_child
        assert isinstance(source_cfn, s3.CfnBucket)
        source_cfn.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                event_bridge_enabled=True
            )
        )
        self.result_bucket = s3.Bucket(
            self,
            "Results",
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="s3/results/",
            # Versioned: an overwritten or deleted result (a user's mistake, a re-run writing
            # the same key) can be restored for ``noncurrent_expiration``, then goes.
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=noncurrent_expiration,
                    expired_object_delete_marker=True,  # the markers the rules below leave
                ),
                s3.LifecycleRule(
                    id="expire-checkpoints",
                    prefix=MISSIONS_PREFIX,
                    tag_filters={OBJECT_KIND_TAG: KIND_CHECKPOINT},
                    expiration=checkpoint_expiration,
                ),
                s3.LifecycleRule(
                    id="expire-shard-results",
                    prefix=MISSIONS_PREFIX,
                    tag_filters={OBJECT_KIND_TAG: KIND_SHARD_RESULT},
                    expiration=intermediate_expiration,
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads",
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                ),
            ],
            **secure,  # type: ignore[arg-type]
        )
        pitr = dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True)
        self.mission_table = dynamodb.Table(
            self,
            "tblMission",
            partition_key=dynamodb.Attribute(name="missionId", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=pitr,
            time_to_live_attribute=TTL_ATTRIBUTE,
            removal_policy=removal_policy,
        )
        self.mission_table.add_global_secondary_index(
            index_name=EXECUTION_INDEX,
            partition_key=dynamodb.Attribute(
                name="executionArn", type=dynamodb.AttributeType.STRING
            ),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.mission_table.add_global_secondary_index(  # lighthpc ls: newest missions first
            index_name=MISSIONS_INDEX,
            partition_key=dynamodb.Attribute(name="kind", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="createdAt", type=dynamodb.AttributeType.NUMBER),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.trans_table = dynamodb.Table(
            self,
            "tblTrans",
            partition_key=dynamodb.Attribute(name="missionId", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="shardId", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=pitr,
            time_to_live_attribute=TTL_ATTRIBUTE,
            removal_policy=removal_policy,
        )
