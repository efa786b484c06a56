"""The sample's HEAD on S3, as the start checks need it (``workflow.start_checks.HeadSample``)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from workflow.request import SampleRef
from workflow.start_checks import HeadSample, SampleHead, SampleUnreadable

_TOO_MANY_REQUESTS = 429


def s3_head_sample(s3: Any) -> HeadSample:
    """HEAD through ``s3``. A 4xx answer (404 missing, 403 forbidden, 400 a bad version id)
    is about this object and asking again changes nothing: ``SampleUnreadable``. Throttling
    and 5xx are the service's, already retried by botocore: they propagate as they are."""

    def head(sample: SampleRef) -> SampleHead:
        kwargs: dict[str, Any] = {"Bucket": sample.bucket, "Key": sample.key}
        if sample.version_id:
            kwargs["VersionId"] = sample.version_id
        try:
            resp = s3.head_object(**kwargs)
        except ClientError as exc:
            if _input_at_fault(exc):
                raise SampleUnreadable(_code(exc)) from exc
            raise
        return SampleHead(
            size=int(resp.get("ContentLength", 0)),
            etag=str(resp.get("ETag", "")).strip('"') or None,
            version_id=resp.get("VersionId"),
        )

    return head


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _input_at_fault(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status is None and _code(exc).isdigit():  # HEAD has no body: the code is the status
        status = int(_code(exc))
    return isinstance(status, int) and 400 <= status < 500 and status != _TOO_MANY_REQUESTS
