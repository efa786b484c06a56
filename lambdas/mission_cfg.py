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
    store = services().store
    if op == "get":
        return profiles.get_profile(store, name)
    if op == "put":
        return profiles.put_profile(store, name, body)
    if op == "delete":
        return profiles.delete_profile(store, name)
    if op == "list":
        return profiles.list_profiles(store)
    raise ProfileInvalid(f"unknown operation {op!r}; use get, put, list or delete")


def _from_http(event: dict[str, Any]) -> tuple[str, Any, Any]:
    method = str(event.get("httpMethod", "GET")).upper()
    name = (event.get("pathParameters") or {}).get("name")
    body: Any = None
    if event.get("body"):
        try:
            body = json.loads(event["body"])
        except json.JSONDecodeError as exc:
            raise ProfileInvalid(f"body is not JSON: {exc}") from exc
        if isinstance(body, dict) and "params" in body:
            body = body["params"]
    op = {"GET": "get" if name else "list", "PUT": "put", "DELETE": "delete"}.get(method, method)
    return op, name, body


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Direct invocation ``{"op", "name", "params"}`` raises named errors; HTTP returns codes."""
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
