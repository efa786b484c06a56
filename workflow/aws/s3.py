"""``workflow.ports.ObjectStore`` on S3, through a low-level boto3 client.

A read refused for the object's own sake (a 4xx: 404 missing, 403 forbidden, 400 a bad
version id) becomes ``ObjectUnavailable`` with S3's error code, so the use cases can say
which input could not be read without knowing botocore. Throttling (429) and 5xx are the
service's, already retried by botocore: they propagate as they are.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from workflow.errors import ObjectUnavailable
from workflow.ports import ObjectHead

_COPY_CHUNK = 1024 * 1024
_TOO_MANY_REQUESTS = 429
SINGLE_PUT_BYTES = 8 * 1024 * 1024  # boto3's multipart threshold: below it, one PutObject


@contextmanager
def _readable(bucket: str, key: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if not _input_at_fault(exc, code):
            raise
        raise ObjectUnavailable(f"s3://{bucket}/{key} cannot be read ({code})", code) from exc


def _input_at_fault(exc: ClientError, code: str) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status is None and code.isdigit():  # HEAD has no body: the code is the status
        status = int(code)
    return isinstance(status, int) and 400 <= status < 500 and status != _TOO_MANY_REQUESTS


class S3ObjectStore:
    def __init__(self, client: Any) -> None:
        self._s3 = client

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectHead:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        with _readable(bucket, key):
            head = self._s3.head_object(**kwargs)
        return ObjectHead(
            size=int(head.get("ContentLength", 0)),
            etag=str(head.get("ETag", "")).strip('"'),
            version_id=head.get("VersionId"),
        )

    def download(self, bucket: str, key: str, dest: Path, *, version_id: str | None = None) -> None:
        extra = {"VersionId": version_id} if version_id else None
        with _readable(bucket, key):
            self._s3.download_file(bucket, key, str(dest), ExtraArgs=extra)

    def fetch(self, bucket: str, key: str, dest: Path) -> None:
        with _readable(bucket, key):
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
            with dest.open("wb") as out:
                shutil.copyfileobj(body, out, _COPY_CHUNK)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        with _readable(bucket, key):
            return bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def upload(self, source: Path, bucket: str, key: str, *, tagging: str | None = None) -> None:
        """A small file in one PutObject; a large one through the transfer manager (multipart,
        threads), whose set-up costs more than a small shard result's whole upload."""
        extra = {"Tagging": tagging} if tagging else {}
        if source.stat().st_size < SINGLE_PUT_BYTES:
            self._s3.put_object(Bucket=bucket, Key=key, Body=source.read_bytes(), **extra)
            return
        self._s3.upload_file(str(source), bucket, key, ExtraArgs=extra or None)

    def put_bytes(
        self, bucket: str, key: str, body: bytes, *, content_type: str | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": body}
        if content_type:
            kwargs["ContentType"] = content_type
        self._s3.put_object(**kwargs)
