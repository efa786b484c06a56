"""EventBridge rules: the S3 trigger and the signals ``node_watch`` reacts to.

Patterns come from the code that consumes the events: the S3 pattern from
``workflow.trigger.source_event_pattern`` (the local mode's rule too), the detail types and
states from ``workflow.watch`` (node_watch's dispatcher).

The EC2 rules match this stack's account and region only. Nothing narrower is possible:
neither the Spot interruption warning nor the state-change notification carries the
instance's tags (``detail`` has only ``instance-id`` and ``instance-action``/``state``), and
instance ids are created at run time. node_watch reads the instance's tags
(``ComputeLauncher.node_ref``) and ignores an instance without lightHPC's tags ("not a
lightHPC node") or whose unit this stack does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from workflow.watch import (
    ENDED_EXECUTION,
    EXECUTION_CHANGE,
    GONE_STATES,
    SPOT_WARNING,
    STATE_CHANGE,
)

_PATTERN_FIELDS: Final = {
    "source": "source",
    "detail-type": "detail_type",
    "detail": "detail",
    "account": "account",
    "region": "region",
    "resources": "resources",
}
TARGET_RETRIES: Final = 8
TARGET_MAX_AGE: Final = cdk.Duration.hours(2)


def event_pattern(pattern: Mapping[str, Any]) -> events.EventPattern:
    """An EventBridge pattern (as JSON keys) as the CDK ``EventPattern``."""
    unknown = sorted(set(pattern) - set(_PATTERN_FIELDS))
    if unknown:
        raise ValueError(f"unsupported event pattern field(s): {', '.join(unknown)}")
    return events.EventPattern(**{_PATTERN_FIELDS[k]: v for k, v in pattern.items()})


class MissionEvents(Construct):
    """``source_rule`` → state machine; ``spot_rule``, ``instance_rule``, ``execution_rule``
    → node_watch."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source_pattern: Mapping[str, Any],
        state_machine: sfn.IStateMachine,
        node_watch: lambda_.IFunction,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.source_rule = events.Rule(
            self,
            "SourceObjectCreated",
            description="A sample uploaded under the source prefix starts a mission",
            event_pattern=event_pattern(source_pattern),
            # No input transformation: the raw event is the execution input.
            targets=[
                targets.SfnStateMachine(
                    state_machine, retry_attempts=TARGET_RETRIES, max_event_age=TARGET_MAX_AGE
                )
            ],
        )
        watch = targets.LambdaFunction(
            node_watch,
            retry_attempts=TARGET_RETRIES,
            max_event_age=TARGET_MAX_AGE,
            dead_letter_queue=dead_letter_queue,  # undeliverable after the retries
        )
        account, region = [cdk.Aws.ACCOUNT_ID], [cdk.Aws.REGION]
        self.spot_rule = events.Rule(
            self,
            "SpotInterruption",
            description="Spot interruption warning: fail the attempt at once (Spot.Interrupted)",
            event_pattern=events.EventPattern(
                source=["aws.ec2"], detail_type=[SPOT_WARNING], account=account, region=region
            ),
            targets=[watch],
        )
        self.instance_rule = events.Rule(
            self,
            "InstanceGone",
            description="A node stopping or terminated without reporting: Node.Lost",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=[STATE_CHANGE],
                detail={"state": sorted(GONE_STATES)},
                account=account,
                region=region,
            ),
            targets=[watch],
        )
        self.execution_rule = events.Rule(
            self,
            "ExecutionEnded",
            description="Execution aborted, failed or timed out: terminate its nodes",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=[EXECUTION_CHANGE],
                detail={
                    "status": sorted(ENDED_EXECUTION),
                    "stateMachineArn": [state_machine.state_machine_arn],
                },
            ),
            targets=[watch],
        )
