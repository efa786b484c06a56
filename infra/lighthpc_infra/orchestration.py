"""The mission state machine: ``statemachine.asl.json`` inlined as the DefinitionString (so
synth and cfn-lint see it), its ``${Placeholders}`` filled by ``DefinitionSubstitutions``.

The placeholder names come from ``workflow.asl.placeholder_values``: the local mode and the
deployed stack substitute exactly the same names.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from workflow.asl import placeholder_values, read_definition


def execution_log_group_name(name: str) -> str:
    """``/aws/vendedlogs/states/<name>-<stack uuid>``: unique per deployment.

    The group is retained with the data (``retainData``), so a fixed name would make the next
    ``cdk deploy`` after a ``cdk destroy`` fail on "already exists". The stack id's UUID is new
    at every stack creation. ``/aws/vendedlogs/`` keeps the CloudWatch Logs resource policy
    small (one wildcard entry for every vended log group).
    """
    stack_uuid = cdk.Fn.select(2, cdk.Fn.split("/", cdk.Aws.STACK_ID))
    return f"/aws/vendedlogs/states/{name}-{stack_uuid}"


class MissionStateMachine(Construct):
    """``state_machine`` (STANDARD, X-Ray, CloudWatch Logs level ALL), its ``role`` and
    ``log_group``; ``arn_for_policies`` is its ARN built from the name, for policies the
    state machine itself depends on (its own role's, the Lambdas')."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        light_scheduler: lambda_.IFunction,
        rslt_proc: lambda_.IFunction,
        topic: sns.ITopic,
        include_execution_data: bool,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.log_group = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=execution_log_group_name(name),
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"Step Functions state machine {name}",
        )
        substitutions = placeholder_values(
            {"light_scheduler": light_scheduler.function_arn, "rslt_proc": rslt_proc.function_arn},
            topic.topic_arn,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(read_definition()),
            definition_substitutions=substitutions,
            role=self.role,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                include_execution_data=include_execution_data,
            ),
        )
        self.arn_for_policies = cdk.Stack.of(self).format_arn(
            service="states",
            resource="stateMachine",
            resource_name=name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        # Child executions of the Distributed Map: execution:<name>/<mapRunLabel>:<id>.
        self.child_executions_arn = cdk.Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{name}/*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
