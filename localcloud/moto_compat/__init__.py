"""Guarded, reversible compatibility fixes for moto (pinned: ``MOTO_VERSION_PINNED``).

Each :class:`Fix` repairs one measured difference between moto's emulation and AWS
(DESIGN §6) as layers of :class:`Patch` over moto (``machinery``). The functional tests
(``tests/functional/test_moto_compat*.py``) revert one fix at a time to prove the bug is
still in moto, and fail the day it is not, telling us to drop the fix.

AWS parity: moto behaves differently from AWS where the product relies on AWS.

- ``parity_sfn``: 1 ``early_task_outcome``, 2 ``heartbeat_timeout_error``,
  4 ``fresh_task_token_per_attempt``, 5 ``execution_name_default``,
  7 ``task_failure_cause``.
- ``parity_dynamodb``: 3 ``dynamodb_write_lock`` (concurrent ``ADD`` writes were lost).
- ``parity_dynamodb_conflicts``: 11 ``dynamodb_transaction_conflicts`` (moto never refuses a
  write for an in-flight transaction), 12 ``dynamodb_throttling`` (nor for capacity); their
  rates and holds are ``FAULTS``.
- ``parity_events``: 6a ``eventbridge_sfn_target``, 6b ``s3_eventbridge_event_shape``.
- ``parity_sfn_limits``: 11 ``map_tolerated_failure``.
- ``parity_logs``: 15 ``logs_put_batch_limits`` (moto stores any PutLogEvents batch),
  16 ``logs_filter_stream_prefix`` (moto's FilterLogEvents ignores the stream prefix).

Performance (``performance``): moto answers right but does O(table) work per call.

- 8 ``transaction_item_snapshot``, 9 ``dynamodb_wire_values``,
  10 ``dynamodb_query_partition``, 17 ``dynamodb_condition_parse_cache``,
  18 ``dynamodb_update_fast_path``.
- ``performance_server``: 19 ``moto_server_module_list`` (the server listed its package
  directory on every request, inside its dispatcher lock).
- ``performance_responses``: 20 ``dynamodb_result_conversion`` (results reached wire JSON
  through a generic recursion per value).
- ``performance_query_copy``: 21 ``dynamodb_query_filter_before_copy`` (a filtered Query
  deep-copied every item of its page, then filtered the copies).
- ``performance_item_size``: 24 ``dynamodb_item_size_once`` (a new item re-sized every
  attribute it held at each attribute's insertion).
- ``performance_sfn``: 22 ``sfn_definition_parse_cache`` (every StartExecution re-parsed the
  definition with the ANTLR grammar before its first state ran), 23 ``sfn_task_client_reuse``
  (every Task made a new SDK client from boto3's default session).

Nothing is patched at import time: call :func:`apply_all` (``EmbeddedCloud`` does).
moto is imported lazily, so this package imports without the ``local`` extra installed.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Final

from localcloud.moto_compat.machinery import Fix, Impl, MotoCompatWarning, Patch, Wrapper
from localcloud.moto_compat.parity_dynamodb import DYNAMODB_WRITE_LOCK
from localcloud.moto_compat.parity_dynamodb_conflicts import (
    DYNAMODB_THROTTLING,
    DYNAMODB_TRANSACTION_CONFLICTS,
    FAULTS,
    DynamoFaults,
)
from localcloud.moto_compat.parity_events import (
    EVENTBRIDGE_SFN_TARGET,
    S3_EVENTBRIDGE_EVENT_SHAPE,
)
from localcloud.moto_compat.parity_logs import LOGS_FILTER_STREAM_PREFIX, LOGS_PUT_BATCH_LIMITS
from localcloud.moto_compat.parity_sfn import (
    EARLY_TASK_OUTCOME,
    EXECUTION_NAME_DEFAULT,
    FRESH_TASK_TOKEN_PER_ATTEMPT,
    HEARTBEAT_TIMEOUT_ERROR,
    SFN_PARSER_BACKEND,
    TASK_FAILURE_CAUSE,
)
from localcloud.moto_compat.parity_sfn_limits import (
    MAP_TOLERATED_FAILURE,
    TOLERATED_FAILURE_PERCENTAGE_INTEGER,
)
from localcloud.moto_compat.performance import (
    DYNAMODB_CONDITION_PARSE_CACHE,
    DYNAMODB_QUERY_PARTITION,
    DYNAMODB_UPDATE_FAST_PATH,
    DYNAMODB_WIRE_VALUES,
    TRANSACTION_ITEM_SNAPSHOT,
    is_wire_attribute_value,
)
from localcloud.moto_compat.performance_item_size import DYNAMODB_ITEM_SIZE_ONCE
from localcloud.moto_compat.performance_query_copy import DYNAMODB_QUERY_FILTER_BEFORE_COPY
from localcloud.moto_compat.performance_responses import DYNAMODB_RESULT_CONVERSION
from localcloud.moto_compat.performance_server import MOTO_SERVER_MODULE_LIST
from localcloud.moto_compat.performance_sfn import (
    SFN_DEFINITION_PARSE_CACHE,
    SFN_TASK_CLIENT_REUSE,
)

__all__ = [
    "DYNAMODB_CONDITION_PARSE_CACHE",
    "DYNAMODB_ITEM_SIZE_ONCE",
    "DYNAMODB_QUERY_FILTER_BEFORE_COPY",
    "DYNAMODB_QUERY_PARTITION",
    "DYNAMODB_RESULT_CONVERSION",
    "DYNAMODB_THROTTLING",
    "DYNAMODB_TRANSACTION_CONFLICTS",
    "DYNAMODB_WIRE_VALUES",
    "DYNAMODB_WRITE_LOCK",
    "EARLY_TASK_OUTCOME",
    "EVENTBRIDGE_SFN_TARGET",
    "EXECUTION_NAME_DEFAULT",
    "FAULTS",
    "FIXES",
    "FIXES_BY_NAME",
    "FRESH_TASK_TOKEN_PER_ATTEMPT",
    "HEARTBEAT_TIMEOUT_ERROR",
    "LOGS_FILTER_STREAM_PREFIX",
    "LOGS_PUT_BATCH_LIMITS",
    "MAP_TOLERATED_FAILURE",
    "MOTO_SERVER_MODULE_LIST",
    "MOTO_VERSION_PINNED",
    "S3_EVENTBRIDGE_EVENT_SHAPE",
    "SFN_DEFINITION_PARSE_CACHE",
    "SFN_PARSER_BACKEND",
    "SFN_TASK_CLIENT_REUSE",
    "TASK_FAILURE_CAUSE",
    "TOLERATED_FAILURE_PERCENTAGE_INTEGER",
    "TRANSACTION_ITEM_SNAPSHOT",
    "DynamoFaults",
    "Fix",
    "Impl",
    "MotoCompatWarning",
    "Patch",
    "Wrapper",
    "apply_all",
    "check_moto_version",
    "installed_moto_version",
    "is_wire_attribute_value",
    "revert_all",
]

MOTO_VERSION_PINNED: Final = "5.2.5"

FIXES: Final[tuple[Fix, ...]] = (
    EARLY_TASK_OUTCOME,
    HEARTBEAT_TIMEOUT_ERROR,
    DYNAMODB_WRITE_LOCK,
    FRESH_TASK_TOKEN_PER_ATTEMPT,
    EXECUTION_NAME_DEFAULT,
    EVENTBRIDGE_SFN_TARGET,
    S3_EVENTBRIDGE_EVENT_SHAPE,
    TASK_FAILURE_CAUSE,
    TRANSACTION_ITEM_SNAPSHOT,
    DYNAMODB_WIRE_VALUES,
    DYNAMODB_QUERY_PARTITION,
    DYNAMODB_CONDITION_PARSE_CACHE,
    DYNAMODB_UPDATE_FAST_PATH,
    DYNAMODB_TRANSACTION_CONFLICTS,
    DYNAMODB_THROTTLING,
    MAP_TOLERATED_FAILURE,
    TOLERATED_FAILURE_PERCENTAGE_INTEGER,
    LOGS_PUT_BATCH_LIMITS,
    LOGS_FILTER_STREAM_PREFIX,
    MOTO_SERVER_MODULE_LIST,
    DYNAMODB_RESULT_CONVERSION,
    DYNAMODB_QUERY_FILTER_BEFORE_COPY,
    SFN_DEFINITION_PARSE_CACHE,
    SFN_TASK_CLIENT_REUSE,
    DYNAMODB_ITEM_SIZE_ONCE,
)
FIXES_BY_NAME: Final[dict[str, Fix]] = {fix.name: fix for fix in FIXES}


def installed_moto_version() -> str | None:
    try:
        module = importlib.import_module("moto")
    except ImportError:
        return None
    return str(getattr(module, "__version__", "")) or None


def check_moto_version() -> bool:
    """Warn (never fail) when moto is not the version these fixes were measured on."""
    version = installed_moto_version()
    if version == MOTO_VERSION_PINNED:
        return True
    warnings.warn(
        f"moto {version} is installed; the compatibility fixes were measured on "
        f"{MOTO_VERSION_PINNED}. Run tests/functional/test_moto_compat*.py to see which "
        "fixes are still needed.",
        MotoCompatWarning,
        stacklevel=2,
    )
    return False


def apply_all() -> list[str]:
    """Apply every fix that still fits moto; return the names newly applied."""
    check_moto_version()
    return [fix.name for fix in FIXES if fix.apply()]


def revert_all(names: list[str] | None = None) -> list[str]:
    """Revert the named fixes (default: all); return the names actually reverted."""
    selected = FIXES if names is None else tuple(FIXES_BY_NAME[name] for name in names)
    return [fix.name for fix in reversed(selected) if fix.revert()]
