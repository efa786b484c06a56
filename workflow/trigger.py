"""The S3 trigger: which EventBridge events start a mission.

The CDK rule and the local stack's rule are built from this one pattern, so an upload that
starts a mission locally starts one on AWS too.
"""

from __future__ import annotations

from typing import Any

from workflow.settings import Settings


def source_event_pattern(settings: Settings) -> dict[str, Any]:
    """Object Created in the source bucket, under the source prefix."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [settings.source_bucket]},
            "object": {"key": [{"prefix": settings.source_prefix}]},
        },
    }
