"""What one Lambda invocation has room for, and the check PlanMission makes before downloading.

PlanMission downloads the sample and the library into ``/tmp`` and reads them into memory
(the workload validates and counts them). An input that cannot fit must be refused from its
HEAD (``ContentLength``), before a byte is downloaded, with ``Mission.InvalidInput`` naming
the limit: otherwise the invocation dies as ``Runtime.OutOfMemory`` or ``OSError`` (ENOSPC)
after minutes of download, which tells the user nothing.

Memory comes from the invocation's context (``memory_limit_in_mb``, set by AWS and by the
local runtime); ``/tmp`` from ``LIGHTHPC_LAMBDA_TMP_MB``, which the CDK sets to the function's
ephemeral storage (AWS exposes no such value at run time). Without it, AWS's default 512 MB
is assumed: never more room than the function may have.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from workflow.errors import MissionInvalidInput

ENV_LAMBDA_TMP_MB: Final = "LIGHTHPC_LAMBDA_TMP_MB"
DEFAULT_TMP_MB: Final = 512  # AWS's ephemeral storage when the function sets none
MIB: Final = 1024 * 1024
# Bytes of memory per input byte while a workload reads an input: molsim's SMILES reader
# (bytes, decoded text, lines, entries) peaked at 9.3x on 7.7 MB of NCI lines (measured
# 2026-12 with /proc/self/statm and ru_maxrss); 10 leaves a little margin.
MEMORY_PER_INPUT_BYTE: Final = 10
# The Python runtime with boto3, powertools and RDKit imported, before any input is read.
RUNTIME_MB: Final = 200


@dataclass(frozen=True)
class LambdaRoom:
    """Memory and ``/tmp`` of one invocation, in MiB."""

    memory_mb: int
    tmp_mb: int = DEFAULT_TMP_MB

    @classmethod
    def of(cls, memory_mb: int, env: Mapping[str, str] | None = None) -> LambdaRoom:
        raw = (os.environ if env is None else env).get(ENV_LAMBDA_TMP_MB, "")
        return cls(memory_mb=memory_mb, tmp_mb=int(raw) if raw.isdigit() else DEFAULT_TMP_MB)

    @property
    def input_bytes_in_memory(self) -> int:
        """The most input bytes the workload can read with the memory left over."""
        return max(0, (self.memory_mb - RUNTIME_MB) * MIB // MEMORY_PER_INPUT_BYTE)

    @property
    def input_bytes_on_disk(self) -> int:
        return self.tmp_mb * MIB

    def check_inputs(self, sizes: Mapping[str, int]) -> None:
        """``Mission.InvalidInput`` naming the limit when the inputs (name -> bytes, as HEAD
        reported them) cannot be held on ``/tmp`` and in memory together."""
        total = sum(sizes.values())
        listed = ", ".join(f"{name} {size} bytes" for name, size in sizes.items())
        if total > self.input_bytes_on_disk:
            raise MissionInvalidInput(
                f"inputs too large for PlanMission's /tmp: {listed}; the function's ephemeral "
                f"storage is {self.tmp_mb} MB ({self.input_bytes_on_disk} bytes)"
            )
        if total > self.input_bytes_in_memory:
            raise MissionInvalidInput(
                f"inputs too large for PlanMission's memory: {listed}; the function's "
                f"{self.memory_mb} MB hold at most {self.input_bytes_in_memory} input bytes "
                f"({MEMORY_PER_INPUT_BYTE} bytes of memory per input byte)"
            )
