"""Measurement hooks for the benchmarks (in-process: the embedded cloud runs in this process).

Nothing here changes what the product does; each hook counts and is removed on exit.

* ``history.ChildHistory``: the Distributed Map children's event histories, which moto
  discards (events, billed transitions, retries per child).
* ``heartbeats.HeartbeatTimeouts``: the task tokens whose heartbeat expired
  (``States.HeartbeatTimeout``), recorded where moto's interpreter decides it.
* ``lambdas.LambdaCounter``: in-process Lambda invocations, seconds and errors per function
  and ``action``.
* ``server.ServerCalls``: requests moto serves and server time per (service, action), plus
  DynamoDB write request units; the benchmark's own observer clients are left out.
* ``sampler.Sampler``: a statistical profiler over every thread of this process (and, through
  ``_nodeprof``, of each node agent).
* ``memory.ProcessMemory``: RSS of this process and peak summed RSS of the node processes.
"""

from benchmarks.instruments.heartbeats import HeartbeatTimeouts
from benchmarks.instruments.history import (
    ChildHistory,
    ChildRecord,
    parent_history,
    transitions_of,
)
from benchmarks.instruments.lambdas import LambdaCounter, wrap_handler
from benchmarks.instruments.memory import ProcessMemory, self_peak_rss_mb
from benchmarks.instruments.sampler import Sampler, enable_node_profiles, merge_node_profiles
from benchmarks.instruments.server import OBSERVER_HEADER, ServerCalls, mark_observer

__all__ = [
    "OBSERVER_HEADER",
    "ChildHistory",
    "ChildRecord",
    "HeartbeatTimeouts",
    "LambdaCounter",
    "ProcessMemory",
    "Sampler",
    "ServerCalls",
    "enable_node_profiles",
    "mark_observer",
    "merge_node_profiles",
    "parent_history",
    "self_peak_rss_mb",
    "transitions_of",
    "wrap_handler",
]
