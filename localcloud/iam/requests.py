"""The authorizations AWS makes for one API call: (action, resource ARN, condition context),
derived from the call's parameters as botocore holds them before serialization.

A call an operation table below does not name is checked as ``<prefix>:<Operation>`` on
``*``: only a statement with ``Resource: "*"`` allows it, never a scoped one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from localcloud.iam.policy import Check

Rule = Callable[[str, Mapping[str, Any], "ArnContext", "Facts"], "list[Check] | None"]


@dataclass(frozen=True)
class ArnContext:
    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )


class Facts(Protocol):
    """What IAM knows that the request does not carry (read from the emulator)."""

    def instance_tags(self, instance_ids: Sequence[str]) -> dict[str, dict[str, str]]: ...

    def launch_template(self, spec: Mapping[str, Any]) -> tuple[str, str, list[str]]:
        """(template id, image id, security group ids) of a LaunchTemplateSpecification."""
        ...

    def task_token_resource(self, token: str) -> str:
        """The ARN of the state machine that issued ``token``."""
        ...


def checks(
    prefix: str, operation: str, params: Mapping[str, Any], arns: ArnContext, facts: Facts
) -> list[Check]:
    rule = _RULES.get(prefix)
    if rule is not None:
        found = rule(operation, params, arns, facts)
        if found is not None:
            return found
    return [Check(f"{prefix}:{operation}", "*")]


# ---- DynamoDB ---------------------------------------------------------------------------

_TRANSACT_ACTIONS = {
    "ConditionCheck": "ConditionCheckItem",
    "Put": "PutItem",
    "Delete": "DeleteItem",
    "Update": "UpdateItem",
}


def _dynamodb(
    operation: str, params: Mapping[str, Any], arns: ArnContext, facts: Facts
) -> list[Check] | None:
    del facts

    def table(name: str, index: str | None = None) -> str:
        return arns.arn("dynamodb", f"table/{name}" + (f"/index/{index}" if index else ""))

    if operation == "TransactWriteItems":
        out = []
        for item in params.get("TransactItems", []):
            for kind, body in item.items():
                out.append(Check(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table(body["TableName"])))
        return out
    if operation == "TransactGetItems":
        return [
            Check("dynamodb:GetItem", table(i["Get"]["TableName"]))
            for i in params.get("TransactItems", [])
        ]
    if operation in {"BatchWriteItem", "BatchGetItem"}:
        return [Check(f"dynamodb:{operation}", table(n)) for n in params.get("RequestItems", {})]
    if "TableName" in params:
        return [Check(f"dynamodb:{operation}", table(params["TableName"], params.get("IndexName")))]
    return None


# ---- S3 ---------------------------------------------------------------------------------

_S3_OBJECT_ACTIONS = {
    "GetObject": "GetObject",
    "HeadObject": "GetObject",
    "PutObject": "PutObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload",
    "DeleteObject": "DeleteObject",
    "PutObjectTagging": "PutObjectTagging",
    "GetObjectTagging": "GetObjectTagging",
}
_S3_VERSIONED = {"GetObject": "GetObjectVersion", "DeleteObject": "DeleteObjectVersion"}
_S3_LIST = {"ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "HeadBucket": "ListBucket"}


def _s3(
    operation: str, params: Mapping[str, Any], arns: ArnContext, facts: Facts
) -> list[Check] | None:
    del facts
    bucket = params.get("Bucket")
    if bucket is None:
        return None
    bucket_arn = f"arn:{arns.partition}:s3:::{bucket}"

    def action_on(name: str, key: str, version: str | None) -> Check:
        if version and name in _S3_VERSIONED:
            name = _S3_VERSIONED[name]
        if version and name.endswith("ObjectTagging"):
            name = name.replace("ObjectTagging", "ObjectVersionTagging")
        return Check(f"s3:{name}", f"{bucket_arn}/{key}")

    if operation in _S3_OBJECT_ACTIONS and "Key" in params:
        return [action_on(_S3_OBJECT_ACTIONS[operation], params["Key"], params.get("VersionId"))]
    return _s3_other(operation, params, arns, bucket_arn, action_on)


def _s3_other(
    operation: str, params: Mapping[str, Any], arns: ArnContext, bucket_arn: str, action_on: Any
) -> list[Check]:
    if operation == "CopyObject":
        source = params.get("CopySource")
        if isinstance(source, Mapping):
            src = Check(
                "s3:GetObject", f"arn:{arns.partition}:s3:::{source['Bucket']}/{source['Key']}"
            )
        else:
            src = Check("s3:GetObject", f"arn:{arns.partition}:s3:::{str(source).split('?')[0]}")
        return [action_on("PutObject", params["Key"], None), src]
    if operation == "DeleteObjects":
        return [
            action_on("DeleteObject", o["Key"], o.get("VersionId"))
            for o in params.get("Delete", {}).get("Objects", [])
        ]
    if operation in _S3_LIST:
        context = {"s3:prefix": (str(params.get("Prefix", "")),)}
        return [Check(f"s3:{_S3_LIST[operation]}", bucket_arn, context)]
    if operation == "ListObjectVersions":
        context = {"s3:prefix": (str(params.get("Prefix", "")),)}
        return [Check("s3:ListBucketVersions", bucket_arn, context)]
    return [Check(f"s3:{operation}", bucket_arn)]


# ---- EC2 --------------------------------------------------------------------------------


def _request_tags(specs: Sequence[Mapping[str, Any]], kind: str) -> dict[str, tuple[str, ...]]:
    return {
        f"aws:RequestTag/{t['Key']}": (str(t["Value"]),)
        for spec in specs
        if spec.get("ResourceType") == kind
        for t in spec.get("Tags", [])
    }


def _launch(
    operation: str, params: Mapping[str, Any], arns: ArnContext, facts: Facts
) -> list[Check]:
    """CreateFleet(instant)/RunInstances: the fleet, the template and what the launch uses
    (image, security groups, subnets named by the request or the template) and creates
    (instance with its request tags, interfaces, volumes, Spot requests), and CreateTags
    for each tagged resource type with ``ec2:CreateAction``."""

    def ec2(kind: str, name: str = "*") -> str:
        return arns.arn("ec2", f"{kind}/{name}")

    run = "ec2:RunInstances"
    specs = params.get("TagSpecifications", [])
    out: list[Check] = []
    if operation == "CreateFleet":
        out.append(Check("ec2:CreateFleet", ec2("fleet")))
        configs = params.get("LaunchTemplateConfigs", [])
        templates = [c["LaunchTemplateSpecification"] for c in configs]
        subnets = {
            o["SubnetId"] for c in configs for o in c.get("Overrides", []) if "SubnetId" in o
        }
        spot = (
            params.get("TargetCapacitySpecification", {}).get("DefaultTargetCapacityType") == "spot"
        )
    else:
        templates = [params["LaunchTemplate"]] if "LaunchTemplate" in params else []
        subnets = {params["SubnetId"]} if "SubnetId" in params else set()
        spot = "InstanceMarketOptions" in params
    images = {params["ImageId"]} if "ImageId" in params else set()
    groups = set(params.get("SecurityGroupIds", []))
    for spec in templates:
        template_id, image_id, template_groups = facts.launch_template(spec)
        out.append(Check(f"ec2:{operation}", ec2("launch-template", template_id)))
        if operation == "CreateFleet":
            out.append(Check(run, ec2("launch-template", template_id)))
        images.add(image_id)
        groups.update(template_groups)
    out.extend(Check(run, arns.arn("ec2", f"image/{i}", account=False)) for i in sorted(images))
    out.extend(Check(run, ec2("security-group", g)) for g in sorted(groups))
    out.extend(Check(run, ec2("subnet", s)) for s in sorted(subnets))
    out.append(Check(run, ec2("instance"), _request_tags(specs, "instance")))
    out.extend(Check(run, ec2(kind)) for kind in ("network-interface", "volume"))
    if spot:
        out.append(Check(run, ec2("spot-instances-request")))
    create_action = {"ec2:CreateAction": (operation,)}
    for spec in specs:
        kind = str(spec["ResourceType"])
        out.append(
            Check("ec2:CreateTags", ec2(kind), {**create_action, **_request_tags(specs, kind)})
        )
    return out


def _ec2(
    operation: str, params: Mapping[str, Any], arns: ArnContext, facts: Facts
) -> list[Check] | None:
    if operation in {"CreateFleet", "RunInstances"}:
        return _launch(operation, params, arns, facts)
    if operation in {"TerminateInstances", "StopInstances", "StartInstances", "RebootInstances"}:
        ids = list(params.get("InstanceIds", []))
        tags = facts.instance_tags(ids)
        return [
            Check(
                f"ec2:{operation}",
                arns.arn("ec2", f"instance/{iid}"),
                {f"ec2:ResourceTag/{k}": (v,) for k, v in tags.get(iid, {}).items()},
            )
            for iid in ids
        ]
    return None  # Describe*: no resource-level permissions


# ---- Step Functions, Lambda, SNS, EventBridge -------------------------------------------


def _states(
    operation: str, params: Mapping[str, Any], arns: ArnContext, facts: Facts
) -> list[Check] | None:
    del arns
    if "taskToken" in params:
        return [Check(f"states:{operation}", facts.task_token_resource(str(params["taskToken"])))]
    for name in ("stateMachineArn", "executionArn", "mapRunArn", "resourceArn"):
        if name in params:
            return [Check(f"states:{operation}", str(params[name]))]
    return None


def _lambda(
    operation: str, params: Mapping[str, Any], arns: ArnContext, facts: Facts
) -> list[Check] | None:
    del facts
    name = params.get("FunctionName")
    if name is None:
        return None
    name = str(name)
    arn = name if name.startswith("arn:") else arns.arn("lambda", f"function:{name}")
    action = "lambda:InvokeFunction" if operation == "Invoke" else f"lambda:{operation}"
    return [Check(action, arn)]


def _sns(
    operation: str, params: Mapping[str, Any], arns: ArnContext, facts: Facts
) -> list[Check] | None:
    del arns, facts
    arn = params.get("TopicArn") or params.get("TargetArn")
    return [Check(f"sns:{operation}", str(arn))] if arn else None


def _events(
    operation: str, params: Mapping[str, Any], arns: ArnContext, facts: Facts
) -> list[Check] | None:
    del facts
    if operation == "PutEvents":
        buses = {str(e.get("EventBusName", "default")) for e in params.get("Entries", [])}
        return [
            Check(
                "events:PutEvents",
                b if b.startswith("arn:") else arns.arn("events", f"event-bus/{b}"),
            )
            for b in sorted(buses)
        ]
    if "Name" in params and "Rule" in operation:
        return [Check(f"events:{operation}", arns.arn("events", f"rule/{params['Name']}"))]
    return None


# ---- CloudWatch Logs --------------------------------------------------------------------

_LOGS_ON_STREAM = frozenset({"CreateLogStream", "PutLogEvents", "GetLogEvents"})


def _logs(
    operation: str, params: Mapping[str, Any], arns: ArnContext, facts: Facts
) -> list[Check] | None:
    """Stream calls on the stream's ARN (``log-group:<g>:log-stream:<s>``); other calls on
    the group's ``:*`` form, the one the CloudWatch Logs guide says policies use."""
    del facts
    group = params.get("logGroupName")
    if group is None:
        return None
    stream = params.get("logStreamName")
    if operation in _LOGS_ON_STREAM and stream is not None:
        resource = f"log-group:{group}:log-stream:{stream}"
    else:
        resource = f"log-group:{group}:*"
    return [Check(f"logs:{operation}", arns.arn("logs", resource))]


_RULES: dict[str, Rule] = {
    "dynamodb": _dynamodb,
    "s3": _s3,
    "ec2": _ec2,
    "states": _states,
    "lambda": _lambda,
    "sns": _sns,
    "events": _events,
    "logs": _logs,
}
