"""Register the local stack's outputs as a CloudFormation stack inside the emulator.

The deployed stack publishes its resource names as CloudFormation outputs, and the remote
CLI (``lighthpc start|status|config|cost``) discovers them with ``DescribeStacks``. Creating
a stack with the *same* outputs in the emulator lets the very same commands run against
``lighthpc local up`` with ``--endpoint-url``. The template has one inert resource (a
``WaitConditionHandle``) because a template needs at least one.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

from workflow.stack_outputs import DEFAULT_STACK_NAME, DESCRIPTIONS, outputs_for

MARKER_RESOURCE = "LocalStackMarker"
# moto stores the handle but says it cannot "parse" it; that is all the marker needs.
_MOTO_NOTICE = r"Tried to parse AWS::CloudFormation::WaitConditionHandle"


def outputs_template(outputs: dict[str, str]) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "lightHPC-SFN embedded local stack (outputs for the remote CLI)",
        "Resources": {MARKER_RESOURCE: {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {
            name: {"Value": value, "Description": DESCRIPTIONS.get(name, name)}
            for name, value in sorted(outputs.items())
        },
    }


def register_outputs(
    cloud: Any,
    stack: Any,
    stack_name: str = DEFAULT_STACK_NAME,
    extra: Mapping[str, str] | None = None,
) -> str:
    """Create (or replace) ``stack_name`` in the emulator with the outputs of ``stack``.

    ``stack`` is a ``localcloud.stack.LocalStack``; ``extra`` adds local-only outputs (the
    node log directory); returns the CloudFormation stack id.
    """
    outputs = {**outputs_for(stack.settings, stack.state_machine_arn), **(extra or {})}
    body = json.dumps(outputs_template(outputs))
    cfn = cloud.client("cloudformation")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_MOTO_NOTICE, category=UserWarning)
        try:
            resp = cfn.create_stack(StackName=stack_name, TemplateBody=body)
        except cfn.exceptions.AlreadyExistsException:
            cfn.delete_stack(StackName=stack_name)
            resp = cfn.create_stack(StackName=stack_name, TemplateBody=body)
    return str(resp["StackId"])
