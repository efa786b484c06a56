"""``noop``: shards that do (almost) nothing, for measuring scheduling overhead.

Options: ``items`` (index-space size, default 1 item per line of the sample) and
``sleepMs`` per item (default 0). The result of a shard is its item count, so the
reduce (a sum) checks that every item was run exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from workflow.errors import MissionInvalidInput
from workflow.workloads.base import (
    SampleReport,
    ShardContext,
    ShardDone,
    ShardOutcome,
    ShardRange,
    ShardStopped,
    WorkInputs,
)


class NoopWorkload:
    name: ClassVar[str] = "noop"

    def validate(self, inputs: WorkInputs) -> SampleReport:
        return SampleReport(items=self.count_items(inputs))

    def count_items(self, inputs: WorkInputs) -> int:
        explicit = inputs.options.get("items")
        if explicit is not None:
            return int(explicit)
        try:
            text = inputs.sample.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise MissionInvalidInput(f"sample is not UTF-8 text: {exc.reason}") from exc
        return sum(1 for line in text.splitlines() if line.strip())

    def run(self, shard: ShardRange, inputs: WorkInputs, ctx: ShardContext) -> ShardOutcome:
        sleep_s = float(inputs.options.get("sleepMs", 0)) / 1000.0
        position = int(ctx.resume.decode()) if ctx.resume else shard.start
        while position < shard.end:
            if ctx.stop_requested():
                payload = str(position).encode()
                ctx.save_checkpoint(payload, position)
                return ShardStopped(checkpoint=payload, position=position)
            if sleep_s:
                time.sleep(sleep_s)
            position += 1
            ctx.progress(position)
        out = ctx.work_dir / f"{shard.shard_id}.json"
        out.write_text(json.dumps({"shard": shard.shard_id, "items": shard.size}))
        return ShardDone(result=out, stats={"items": shard.size})

    def reduce(self, results: Sequence[Path], out: Path, inputs: WorkInputs) -> Mapping[str, Any]:
        total = sum(json.loads(p.read_text())["items"] for p in results)
        out.write_text(json.dumps({"items": total, "shards": len(results)}) + "\n")
        return {"items": total, "shards": len(results)}
