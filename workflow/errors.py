"""Named errors of lightHPC-SFN.

The class *names* are the `Error` strings that Step Functions `Retry`/`Catch` match on:
the Lambda runtime reports ``type(exc).__name__`` as ``errorType``, so each class carries
its dotted API name (``Mission.InvalidInput``) as ``__name__``. Treat them as an API.
"""

from __future__ import annotations

from typing import ClassVar


class LightHpcError(Exception):
    """Base of every error this project raises on purpose."""

    error_name: ClassVar[str] = "LightHpc.Error"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # The Lambda runtime reports type(exc).__name__ as errorType: make it the API name.
        cls.__name__ = cls.error_name
        cls.__qualname__ = cls.error_name

    @property
    def cause(self) -> str:
        return str(self)


class MissionInvalidInput(LightHpcError):
    """The execution input, the params or the sample file cannot be accepted."""

    error_name = "Mission.InvalidInput"


class MissionDuplicate(LightHpcError):
    """The same sample version already started a mission."""

    error_name = "Mission.Duplicate"


class MissionNotFound(LightHpcError):
    error_name = "Mission.NotFound"


class MissionTooManyFailures(LightHpcError):
    """More shards failed than ``maxFailedShardPercent`` tolerates."""

    error_name = "Mission.TooManyFailures"


class MissionOverBudget(LightHpcError):
    """The mission's modelled cost passes its ``maxCostUsd``: refused at planning (nothing is
    written), or, while it runs, a unit's launch refused (its open shards fail with it)."""

    error_name = "Mission.OverBudget"


class ProfileInvalid(LightHpcError):
    error_name = "Profile.Invalid"


class ProfileNotFound(LightHpcError):
    error_name = "Profile.NotFound"


class SpotInterrupted(LightHpcError):
    """The node received a Spot interruption notice (or a rebalance recommendation)."""

    error_name = "Spot.Interrupted"


class NodeLost(LightHpcError):
    """The node disappeared without reporting (terminated, stopped, crashed)."""

    error_name = "Node.Lost"


class NodeCapacity(LightHpcError):
    """EC2 could not provide capacity right now: transient, retried with back-off."""

    error_name = "Node.Capacity"


class NodeLaunchDenied(LightHpcError):
    """EC2 refused the launch on permissions (``UnauthorizedOperation``: the launch role may
    not use this template, image, key or subnet): a deployment fix, never retried."""

    error_name = "Node.LaunchDenied"


class NodeTerminateFailed(LightHpcError):
    """EC2 refused or failed a TerminateInstances. A clean-up that failed: the caller logs it
    and goes on (the node terminates itself and carries a maximum lifetime)."""

    error_name = "Node.TerminateFailed"


class WatchInvalidEvent(LightHpcError):
    """node_watch got an event of a kind it handles but not of that kind's shape (EventBridge
    retries it, then it lands in the dead-letter queue for a person to read)."""

    error_name = "Watch.InvalidEvent"


class ShardFailed(LightHpcError):
    """A shard failed deterministically: retrying would fail again."""

    error_name = "Shard.Failed"


class AttemptSuperseded(LightHpcError):
    """A report or write from an attempt that is no longer current; refused."""

    error_name = "Attempt.Superseded"


class TransitionRefused(LightHpcError):
    """A status change that the transaction state machine does not allow."""

    error_name = "Trans.TransitionRefused"


class AslInvalid(LightHpcError):
    """The state machine definition or its substitutions are not consistent."""

    error_name = "Asl.Invalid"


class WorkloadNotFound(LightHpcError):
    error_name = "Workload.NotFound"


class ObjectUnavailable(LightHpcError):
    """An S3 object cannot be read (absent, wrong version, access denied); ``code`` is S3's."""

    error_name = "Object.Unavailable"

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class WorkloadUnavailable(LightHpcError):
    """A known workload whose optional dependencies are not installed (an install fix, not a
    retry: the message names the extra to install)."""

    error_name = "Workload.Unavailable"


class CommandRunsAsRoot(ShardFailed):
    """A ``command`` shard would run as root: the agent is root and the unprivileged work
    user (created by the node's user data) is missing. Never run user code as root."""

    error_name = "Command.RunsAsRoot"


class SchedulerInvalidEvent(LightHpcError):
    """lightScheduler got an event that is not one of its actions' shapes (a unitFailed
    without ids, an unknown action): a wiring bug or a forgery, never a mission's input."""

    error_name = "Scheduler.InvalidEvent"


class ShardTimedOut(ShardFailed):
    """A shard ran past its ``shardTimeoutSeconds``: it would only run as long again."""

    error_name = "Shard.Timeout"


class BundleInvalid(LightHpcError):
    """A job bundle cannot be used: not a .zip/.tar.gz, past a size limit, a member that
    would land outside its directory (absolute, ``..``, a link, a device), a bad or missing
    manifest, an entry it does not hold, or bytes that differ from those pinned at planning.
    PlanMission and the CLI say it as ``Mission.InvalidInput``; a node fails its unit with it."""

    error_name = "Bundle.Invalid"


class StoreContended(LightHpcError):
    """DynamoDB kept refusing a write as contended (a transaction held the item, or capacity
    ran out) through every retry: transient, not an answer. A Lambda raises it so the state
    machine's ``Retry`` tries the step again later instead of failing the unit's shards."""

    error_name = "Store.Contended"
