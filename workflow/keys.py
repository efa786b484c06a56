"""S3 object keys of a mission, in one place (nodes, handlers and the CLI agree on them).

Shard results and checkpoints are attempt-specific: a superseded attempt can never overwrite
what a later attempt committed; only the ``resultKey`` recorded in ``tblTrans`` counts.
"""

from __future__ import annotations

from urllib.parse import urlencode

from workflow.errors import MissionNotFound
from workflow.records import PROFILE_PREFIX

# S3 lifecycle filters take a key prefix and tags, never a wildcard such as
# ``missions/*/checkpoints/``: checkpoints and shard results are told apart by this tag.
OBJECT_KIND_TAG = "lighthpc:kind"
KIND_CHECKPOINT = "checkpoint"
KIND_SHARD_RESULT = "shard-result"


def kind_tagging(kind: str) -> str:
    """The ``Tagging`` argument of PutObject/upload for an object of ``kind``."""
    return urlencode({OBJECT_KIND_TAG: kind})


def mission_prefix(mission_id: str) -> str:
    return f"missions/{mission_id}/"


def manifest_key(mission_id: str) -> str:
    return f"{mission_prefix(mission_id)}manifest.json"


def shard_result_key(mission_id: str, shard_id: str, attempt: int, suffix: str) -> str:
    return f"{mission_prefix(mission_id)}shards/{shard_id}/attempt-{attempt:03d}{suffix}"


def shard_pack_key(mission_id: str, first_shard_id: str, attempt: int, suffix: str) -> str:
    """A pack of small results (``workflow.result_packs``), named by its first shard: a shard
    is committed once per attempt, so no two packs of an attempt share the name."""
    return f"{mission_prefix(mission_id)}shards/{first_shard_id}/attempt-{attempt:03d}.pack{suffix}"


def checkpoint_prefix(mission_id: str, shard_id: str) -> str:
    return f"{mission_prefix(mission_id)}checkpoints/{shard_id}/"


def checkpoint_key(mission_id: str, shard_id: str, attempt: int) -> str:
    return f"{checkpoint_prefix(mission_id, shard_id)}attempt-{attempt:03d}.ckpt"


def final_result_key(mission_id: str, suffix: str) -> str:
    return f"{mission_prefix(mission_id)}result{suffix}"


def require_mission_id(ref: str) -> str:
    """``ref`` if it can name a mission; ``Mission.NotFound`` for a MissionCfg profile's key.

    Profiles share ``tblMission`` (``CONFIG#<name>``): a lookup by mission id must never
    return one (``status 'CONFIG#default' --wait`` polled a profile for an hour).
    """
    if ref.startswith(PROFILE_PREFIX):
        raise MissionNotFound(f"{ref[:80]!r} is a profile's key, not a mission")
    return ref
