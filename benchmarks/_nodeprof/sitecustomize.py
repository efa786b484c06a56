"""Wall-clock profile of node-agent processes, for ``overhead.py --profile-nodes``.

Put this directory on ``PYTHONPATH`` and set ``LIGHTHPC_BENCH_NODE_PROFILE`` to a directory:
every Python process started with that environment (the node agents the local pool spawns)
samples its main thread's stack, blocked or not, and writes ``<pid>.json`` at exit. Without
the variable this file does nothing.
"""

import os

_OUT = os.environ.get("LIGHTHPC_BENCH_NODE_PROFILE")

if _OUT:
    import atexit
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.instruments import Sampler

    _sampler = Sampler(0.005, main_only=True, include_blocked=True)
    _sampler.__enter__()

    def _write() -> None:
        _sampler.__exit__(None, None, None)
        data = {
            "argv": sys.argv,
            "samples": _sampler.samples,
            "interval": _sampler.interval,
            "inclusive": _sampler.inclusive.most_common(60),
            "self": _sampler.leaf.most_common(30),
        }
        Path(_OUT, f"{os.getpid()}.json").write_text(json.dumps(data))

    atexit.register(_write)
