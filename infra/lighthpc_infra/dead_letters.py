"""Where ``node_watch``'s lost events go, and the alarm that says so.

node_watch runs only as an asynchronous target (EventBridge rules), so a failure has no
caller to see it: an event EventBridge could not deliver (its target retries exhausted) and
an invocation that failed after Lambda's own async retries would both be dropped silently,
and with them a Spot warning or a lost node (the unit then waits for its heartbeat to time
out). Both land in one queue; any message in it raises an alarm on the mission topic.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

# SQS keeps a message 14 days at most: long enough for someone to look at it after a notice.
RETENTION: Final = cdk.Duration.days(14)
ASYNC_RETRIES: Final = 2  # Lambda's own retries of a failed asynchronous invocation
ASYNC_MAX_AGE: Final = cdk.Duration.hours(2)  # as the EventBridge targets (events.py)
ALARM_PERIOD: Final = cdk.Duration.minutes(5)


class WatchDeadLetters(Construct):
    """``queue`` (SSE-SQS, TLS only) for node_watch's undeliverable and failed events, and
    ``alarm`` (any visible message) → the mission ``topic``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        node_watch: lambda_.IFunction,
        topic: sns.ITopic,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        # SSE-SQS, not a customer-managed key: EventBridge can send to it without a key policy.
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=RETENTION,
            removal_policy=removal_policy,
        )
        node_watch.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.queue),
            retry_attempts=ASYNC_RETRIES,
            max_event_age=ASYNC_MAX_AGE,
        )
        self.alarm = cloudwatch.Alarm(
            self,
            "Alarm",
            alarm_description=(
                "node_watch dropped an event (a Spot warning, a lost node or an ended "
                "execution): read the dead-letter queue, then act on the mission it names"
            ),
            metric=self.queue.metric_approximate_number_of_messages_visible(
                period=ALARM_PERIOD, statistic=cloudwatch.Stats.MAXIMUM
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarm.add_alarm_action(cw_actions.SnsAction(topic))
