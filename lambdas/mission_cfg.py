"""MissionCfg API: get/put/list/delete parameter profiles (API Gateway proxy or direct)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.runtime import logger, services
from workflow import profiles
from workflow.errors import LightHpcError, ProfileInvalid, ProfileNotFound

_STATUS = {ProfileInvalid: 400, ProfileNotFound: 404}


def dispatch(op: str, name: Any, body: Any) -> dict[str, Any]:
    svc = services()
    store = svc.store
    if op == "get":
        return profiles.get_profile(store, name)
    if op == "put":
        return profiles.put_profile(
            store, name, body, min_heartbeat_seconds=svc.settings.min_heartbeat_seconds
        )
    if op == "delete":
        return profiles.delete_profile(store, name)
    if op == "list":
        return profiles.list_profiles(store)
    raise ProfileInvalid(f"unknown operation {op!r}; use get, put, list or delete")


_OPS = {"GET": "list", "PUT": "put", "DELETE": "delete"}


def _from_http(event: dict[str, Any]) -> tuple[str, Any, Any]:
    """(op, name, params) of an API Gateway proxy event; any other shape is ``Profile.Invalid``."""
    method = event.get("httpMethod")
    path = event.get("pathParameters")
    if not isinstance(method, str) or not isinstance(path, dict | None):
        raise ProfileInvalid("httpMethod must be a string and pathParameters an object")
    name = (path or {}).get("name")
    body: Any = None
    raw = event.get("body")
    if raw:
        if not isinstance(raw, str):
            raise ProfileInvalid(f"body must be a JSON string, got {type(raw).__name__}")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ProfileInvalid(f"body is not JSON: {exc}") from exc
        if isinstance(body, dict) and "params" in body:
            body = body["params"]
    op = _OPS.get(method.upper(), method)
    if op == "list" and name is not None:
        op = "get"
    return op, name, body


@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Direct invocation ``{"op", "name", "params"}`` raises named errors; HTTP returns codes."""
    if not isinstance(event, dict):
        raise ProfileInvalid(f"event must be a JSON object, got {type(event).__name__}")
    if "httpMethod" not in event:
        return dispatch(str(event.get("op")), event.get("name"), event.get("params"))
    try:
        result = dispatch(*_from_http(event))
        code = 200
    except (ProfileInvalid, ProfileNotFound) as exc:
        result, code = {"error": type(exc).__name__, "message": str(exc)}, _STATUS[type(exc)]
    except LightHpcError as exc:
        logger.exception("MissionCfg request failed")
        result, code = {"error": type(exc).__name__, "message": str(exc)}, 500
    return {
        "statusCode": code,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(result, default=str),
    }
