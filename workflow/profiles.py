"""MissionCfg: named parameter profiles stored in ``tblMission`` (``CONFIG#<name>``).

A profile holds *partial* params; they are validated as a whole mission would see them
(profile merged over the defaults), so a profile that could never start a mission is refused.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from workflow.errors import MissionInvalidInput, ProfileInvalid, ProfileNotFound
from workflow.params import parse_params
from workflow.ports import MissionStore
from workflow.request import validate_profile_name


def _name(name: Any) -> str:
    try:
        return validate_profile_name(name)
    except MissionInvalidInput as exc:
        raise ProfileInvalid(str(exc)) from exc


def put_profile(
    store: MissionStore, name: Any, params: Any, *, min_heartbeat_seconds: int
) -> dict[str, Any]:
    """``min_heartbeat_seconds`` is the deployment's floor: a profile asking less could only
    start missions that PlanMission refuses."""
    name = _name(name)
    if not isinstance(params, Mapping):
        raise ProfileInvalid(f"profile params must be a JSON object, got {type(params).__name__}")
    try:
        parse_params(params, what="profile", min_heartbeat_seconds=min_heartbeat_seconds)
    except MissionInvalidInput as exc:
        raise ProfileInvalid(str(exc)) from exc
    store.put_profile(name, dict(params), time.time())
    return {"profile": name, "params": dict(params)}


def get_profile(store: MissionStore, name: Any) -> dict[str, Any]:
    name = _name(name)
    item = store.get_profile(name)
    if item is None:
        raise ProfileNotFound(f"no MissionCfg profile {name!r}")
    return {"profile": name, "params": dict(item.params), "updatedAt": item.updated_at}


def delete_profile(store: MissionStore, name: Any) -> dict[str, Any]:
    name = _name(name)
    if not store.delete_profile(name):
        raise ProfileNotFound(f"no MissionCfg profile {name!r}")
    return {"profile": name, "deleted": True}


def list_profiles(store: MissionStore) -> dict[str, Any]:
    return {
        "profiles": [{"profile": p.name, "params": dict(p.params)} for p in store.list_profiles()]
    }
