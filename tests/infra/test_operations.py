"""Operations (issue 12 §8): a redeploy after ``cdk destroy`` with retained data, node_watch's
dead letters, the results bucket's versions, and EC2 rules narrowed to this account."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lighthpc_infra.dead_letters import ASYNC_RETRIES

from workflow.watch import SPOT_WARNING, STATE_CHANGE
from workflow.workloads.command import DEFAULT_WORK_USER

# Physical-name properties CloudFormation refuses to create twice in one account/region.
NAME_PROPERTIES = {
    "LogGroupName",
    "BucketName",
    "TableName",
    "QueueName",
    "TopicName",
    "AliasName",
    "RoleName",
    "FunctionName",
    "StateMachineName",
    "LaunchTemplateName",
    "RestApiName",
}


def _refs(value: Any) -> Iterator[str]:
    """Every ``Ref`` and ``Fn::GetAtt`` target inside a CloudFormation value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                yield inner
            elif key == "Fn::GetAtt":
                yield inner[0]
            else:
                yield from _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _refs(inner)


def test_no_retained_resource_has_a_name_that_the_next_deploy_would_reuse(synth: Any) -> None:
    """``cdk destroy`` keeps these; the next ``cdk deploy`` must not collide with them."""
    resources = synth.template["Resources"]
    retained = {k: r for k, r in resources.items() if r.get("DeletionPolicy") == "Retain"}
    assert len(retained) >= 10  # tables, buckets, key, log groups, queue: retainData=true
    for logical_id, resource in retained.items():
        for prop in NAME_PROPERTIES & set(resource.get("Properties", {})):
            name = resource["Properties"][prop]
            per_deployment = [r for r in _refs(name) if r == "AWS::StackId" or r in resources]
            assert per_deployment, f"{logical_id}.{prop} is fixed across deployments: {name}"


def test_execution_log_group_is_vended_and_named_by_the_stack_uuid(synth: Any) -> None:
    (group,) = [
        r
        for r in synth.resources("AWS::Logs::LogGroup").values()
        if "vendedlogs" in str(r["Properties"].get("LogGroupName"))
    ]
    parts = group["Properties"]["LogGroupName"]["Fn::Join"][1]
    assert parts[0] == "/aws/vendedlogs/states/lighthpc-mission-"
    assert parts[1] == {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}
    machine = next(iter(synth.resources("AWS::StepFunctions::StateMachine").values()))
    sinks = machine["Properties"]["LoggingConfiguration"]["Destinations"]
    (logical_id,) = [d["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0] for d in sinks]
    assert synth.template["Resources"][logical_id] is group


def _queue(synth: Any) -> tuple[str, dict[str, Any]]:
    ((logical_id, queue),) = synth.resources("AWS::SQS::Queue").items()
    return logical_id, queue


def test_node_watch_dead_letters_go_to_an_encrypted_tls_only_queue(synth: Any) -> None:
    queue_id, queue = _queue(synth)
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    (policy,) = synth.resources("AWS::SQS::QueuePolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    watch = next(
        k
        for k, r in synth.resources("AWS::Lambda::Function").items()
        if r["Properties"]["Handler"] == "lambdas.node_watch.handler"
    )
    rules = [
        r["Properties"]
        for r in synth.resources("AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"].get("Fn::GetAtt", [""])[0] == watch
    ]
    assert len(rules) == 3
    for rule in rules:
        (target,) = rule["Targets"]
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    senders = {
        s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0]
        for s in statements
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "events.amazonaws.com"}
    }
    assert len(senders) == 3  # each rule may send, nobody else
    (invoke,) = synth.resources("AWS::Lambda::EventInvokeConfig").values()
    assert invoke["Properties"]["FunctionName"] == {"Ref": watch}
    assert invoke["Properties"]["MaximumRetryAttempts"] == ASYNC_RETRIES
    assert invoke["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [queue_id, "Arn"]
    }


def test_a_dead_letter_raises_an_alarm_on_the_mission_topic(synth: Any) -> None:
    queue_id, _ = _queue(synth)
    (alarm,) = synth.resources("AWS::CloudWatch::Alarm").values()
    props = alarm["Properties"]
    assert props["Namespace"] == "AWS/SQS"
    assert props["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert props["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
    ]
    assert (props["ComparisonOperator"], props["Threshold"]) == ("GreaterThanThreshold", 0)
    (topic_id,) = synth.resources("AWS::SNS::Topic")
    assert props["AlarmActions"] == [{"Ref": topic_id}]


def test_cloudwatch_may_publish_to_the_encrypted_topic(synth: Any) -> None:
    """Without both grants an alarm's notice to a CMK-encrypted topic is silently dropped."""
    (key,) = synth.resources("AWS::KMS::Key").values()
    (topic_policy,) = synth.resources("AWS::SNS::TopicPolicy").values()
    for statements, action in (
        (key["Properties"]["KeyPolicy"]["Statement"], "kms:GenerateDataKey*"),
        (topic_policy["Properties"]["PolicyDocument"]["Statement"], "sns:Publish"),
    ):
        (grant,) = [
            s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        ]
        assert action in grant["Action"] or grant["Action"] == action
        assert grant["Condition"]["StringEquals"] == {
            "aws:SourceAccount": {"Ref": "AWS::AccountId"}
        }


def test_result_bucket_is_versioned_and_expires_noncurrent_versions(synth: Any) -> None:
    (results,) = [
        r
        for r in synth.resources("AWS::S3::Bucket").values()
        if r["Properties"].get("LoggingConfiguration", {}).get("LogFilePrefix") == "s3/results/"
    ]
    props = results["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    old = rules["expire-old-versions"]
    assert old["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert old["ExpiredObjectDeleteMarker"] is True
    assert "Prefix" not in old and "TagFilters" not in old  # every object's old versions


def test_ec2_rules_match_only_this_account_and_region(synth: Any) -> None:
    patterns = {
        r["Properties"]["EventPattern"]["detail-type"][0]: r["Properties"]["EventPattern"]
        for r in synth.resources("AWS::Events::Rule").values()
    }
    for kind in (SPOT_WARNING, STATE_CHANGE):
        assert patterns[kind]["account"] == [{"Ref": "AWS::AccountId"}]
        assert patterns[kind]["region"] == [{"Ref": "AWS::Region"}]


def test_user_data_creates_the_work_user_before_the_agent_starts(synth: Any) -> None:
    """Without it a root agent refuses every ``command`` shard (Command.RunsAsRoot)."""
    (template,) = synth.resources("AWS::EC2::LaunchTemplate").values()
    parts = template["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    script = "".join(p if isinstance(p, str) else "<token>" for p in parts)
    create = (
        f"id -u {DEFAULT_WORK_USER} >/dev/null 2>&1 || useradd --system --create-home "
        f"--shell /sbin/nologin {DEFAULT_WORK_USER}"
    )
    assert create in script
    assert script.index(create) < script.index("systemctl enable --now lighthpc-node.service")
