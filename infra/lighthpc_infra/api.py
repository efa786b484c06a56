"""The REST API (IAM auth): MissionCfg profiles and manual mission starts.

``POST /missions`` is a direct AWS service integration with ``states:StartExecution``, not a
Lambda: the request body *is* the manual execution input, the JSON-schema model checks its
shape (and the parameter names) at the edge, and PlanMission applies the one authoritative
validation, with the same ``Mission.InvalidInput`` message as an S3-triggered mission. No
function to deploy, patch or warm up for a pass-through.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from workflow.params import known_param_names

STAGE: Final = "v1"
PROFILE_NAME_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"
# The body becomes the execution input verbatim; escapeJavaScript escapes ' as \' (not JSON).
START_TEMPLATE: Final = """{{
  "stateMachineArn": "{arn}",
  "input": "$util.escapeJavaScript($input.json('$')).replaceAll("\\\\'", "'")"
}}"""
STARTED_TEMPLATE: Final = """{
  "executionArn": "$input.path('$.executionArn')",
  "startDate": "$input.path('$.startDate')"
}"""
ERROR_TEMPLATE: Final = (
    """{"error": "$input.path('$.__type')", "message": "$input.path('$.message')"}"""
)

S = apigw.JsonSchemaType


def _params_schema() -> apigw.JsonSchema:
    """Only known parameter names (their values are validated by PlanMission)."""
    return apigw.JsonSchema(
        type=S.OBJECT,
        additional_properties=False,
        properties={name: apigw.JsonSchema() for name in known_param_names()},
    )


def mission_schema() -> apigw.JsonSchema:
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4,
        title="StartMission",
        type=S.OBJECT,
        required=["input"],
        additional_properties=False,
        properties={
            "input": apigw.JsonSchema(
                type=S.OBJECT,
                required=["bucket", "key"],
                additional_properties=False,
                properties={
                    "bucket": apigw.JsonSchema(type=S.STRING, min_length=3, max_length=63),
                    "key": apigw.JsonSchema(type=S.STRING, min_length=1, max_length=1024),
                    "versionId": apigw.JsonSchema(type=S.STRING, min_length=1),
                },
            ),
            "params": _params_schema(),
            "profile": apigw.JsonSchema(type=S.STRING, pattern=PROFILE_NAME_PATTERN),
        },
    )


def profile_schema() -> apigw.JsonSchema:
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4,
        title="Profile",
        type=S.OBJECT,
        required=["params"],
        additional_properties=False,
        properties={"params": _params_schema()},
    )


class MissionApi(Construct):
    """``api`` (RestApi, stage ``v1``), ``access_logs`` and ``start_role`` (the role API
    Gateway assumes for StartExecution; the stack grants it)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        mission_cfg: lambda_.IFunction,
        state_machine: sfn.IStateMachine,
        cloud_watch_role: bool,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=removal_policy
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            description="lightHPC-SFN: MissionCfg profiles and manual mission starts (IAM auth)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=cloud_watch_role,
            cloud_watch_role_removal_policy=removal_policy if cloud_watch_role else None,
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.IAM
            ),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
            ),
        )
        # RestApi adds an "Endpoint" output; the stack publishes the same URL as ApiUrl.
        self.api.node.try_remove_child("Endpoint")
        self.validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        self._profiles(mission_cfg)
        self.start_role = iam.Role(
            self,
            "StartExecutionRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway POST /missions: states:StartExecution on the mission machine",
        )
        self._missions(state_machine)

    def _profiles(self, mission_cfg: lambda_.IFunction) -> None:
        model = self.api.add_model(
            "ProfileModel", content_type="application/json", schema=profile_schema()
        )
        integration = apigw.LambdaIntegration(mission_cfg)
        profiles = self.api.root.add_resource("profiles")
        profiles.add_method("GET", integration, request_validator=self.validator)
        one = profiles.add_resource("{name}")
        path = {"method.request.path.name": True}
        for verb in ("GET", "DELETE"):
            one.add_method(
                verb, integration, request_parameters=path, request_validator=self.validator
            )
        one.add_method(
            "PUT",
            integration,
            request_parameters=path,
            request_models={"application/json": model},
            request_validator=self.validator,
        )

    def _missions(self, state_machine: sfn.IStateMachine) -> None:
        model = self.api.add_model(
            "StartMissionModel", content_type="application/json", schema=mission_schema()
        )
        integration = apigw.AwsIntegration(
            service="states",
            action="StartExecution",
            integration_http_method="POST",
            options=apigw.IntegrationOptions(
                credentials_role=self.start_role,
                passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                request_templates={
                    "application/json": START_TEMPLATE.format(arn=state_machine.state_machine_arn)
                },
                integration_responses=[
                    apigw.IntegrationResponse(
                        status_code="200",
                        response_templates={"application/json": STARTED_TEMPLATE},
                    ),
                    apigw.IntegrationResponse(
                        status_code="400",
                        selection_pattern="4\\d{2}",
                        response_templates={"application/json": ERROR_TEMPLATE},
                    ),
                    apigw.IntegrationResponse(
                        status_code="500",
                        selection_pattern="5\\d{2}",
                        response_templates={"application/json": ERROR_TEMPLATE},
                    ),
                ],
            ),
        )
        self.api.root.add_resource("missions").add_method(
            "POST",
            integration,
            request_models={"application/json": model},
            request_validator=self.validator,
            method_responses=[
                apigw.MethodResponse(status_code="200"),
                apigw.MethodResponse(status_code="400"),
                apigw.MethodResponse(status_code="500"),
            ],
        )
