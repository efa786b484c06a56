"""command: real child processes, no shell, timeouts, stop/checkpoint/resume."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from workflow.errors import CommandRunsAsRoot, MissionInvalidInput, ShardFailed
from workflow.workloads.base import ShardContext, ShardDone, ShardRange, ShardStopped, WorkInputs
from workflow.workloads.command import (
    DEFAULT_WORK_USER,
    LOCAL_ROOT_ENV,
    TAIL_BYTES,
    WORK_USER_ENV,
    CommandWorkload,
    WorkUser,
    work_user,
)

WORKLOAD = CommandWorkload()
SHARD = ShardRange("m1-s007", 7, 70, 80)

# Writes what the child saw (argv and the LIGHTHPC_* environment) as its shard output.
ECHO = """
import json, os, sys
env = {k: v for k, v in os.environ.items() if k.startswith("LIGHTHPC_")}
seen = {"argv": sys.argv[1:], "env": env}
open(os.environ["LIGHTHPC_SHARD_OUTPUT"], "w").write(json.dumps(seen))
"""

# Announces it runs, then on SIGTERM writes {"position": 74} atomically and exits.
CHECKPOINTS_ON_SIGTERM = """
import json, os, signal, sys, time
ckpt = os.environ["LIGHTHPC_SHARD_CHECKPOINT"]
def stop(signum, frame):
    with open(ckpt + ".tmp", "w") as f:
        json.dump({"position": 74, "state": "half"}, f)
    os.replace(ckpt + ".tmp", ckpt)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(sys.argv[1], "w").close()
time.sleep(60)
sys.exit(5)
"""

# Copies the resume checkpoint (if any) to its output.
RESUMES = """
import os, shutil
shutil.copyfile(os.environ["LIGHTHPC_SHARD_CHECKPOINT"], os.environ["LIGHTHPC_SHARD_OUTPUT"])
"""


# As root the child runs as ``nobody``, who cannot reach an interpreter under /root.
PYTHON = sys.executable if os.geteuid() != 0 else "/usr/bin/python3"


def _py(script: str, *args: str) -> list[str]:
    return [PYTHON, "-c", script, *args]


def _inputs(sample: Path, argv: list[str], **options: Any) -> WorkInputs:
    return WorkInputs(sample=sample, options={"argv": argv, **options})


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run as root (a container), the child runs as ``nobody``: give it a directory it can
    reach (pytest's own is 0700) and write (the tests' marker files)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    monkeypatch.setenv(WORK_USER_ENV, "nobody")
    shared = Path(tempfile.mkdtemp(prefix="lighthpc-command-"))
    shared.chmod(0o777)
    yield shared
    shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.txt"
    path.write_text("a\n\nb\nc\n", encoding="utf-8")
    return path


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


class _Ctx:
    """A ShardContext whose callbacks record what the workload did."""

    def __init__(self, work_dir: Path, resume: bytes | None = None) -> None:
        self.saved: list[tuple[bytes, int]] = []
        self.progress: list[int] = []
        self.stop = False
        self.on_save: Callable[[], None] = lambda: None
        self.ctx = ShardContext(
            work_dir=work_dir,
            resume=resume,
            stop_requested=lambda: self.stop,
            save_checkpoint=self._save,
            progress=self.progress.append,
        )

    def _save(self, data: bytes, position: int) -> None:
        self.saved.append((data, position))
        self.on_save()


def _echo(result: ShardDone) -> dict[str, Any]:
    return json.loads(result.result.read_text())  # type: ignore[no-any-return]


def test_child_gets_shard_env_and_substituted_placeholders(sample: Path, work_dir: Path) -> None:
    argv = _py(ECHO, "{start}", "{end}", "{input}", "{output}", "{checkpoint}", "{shard}")
    argv += ["range={start}-{end}", "{unknown}", "{{start}}"]
    done = WORKLOAD.run(SHARD, _inputs(sample, argv), ShardContext(work_dir=work_dir))
    assert isinstance(done, ShardDone)
    seen = _echo(done)
    out, ckpt = str(done.result), str(work_dir / "m1-s007.checkpoint")
    assert seen["argv"] == [
        *("70", "80", str(sample), out, ckpt, "m1-s007"),
        *("range=70-80", "{unknown}", "{70}"),
    ]
    seen["env"].pop(WORK_USER_ENV, None)  # set by the tmp_path fixture when run as root
    assert seen["env"] == {
        "LIGHTHPC_SHARD_ID": "m1-s007",
        "LIGHTHPC_SHARD_START": "70",
        "LIGHTHPC_SHARD_END": "80",
        "LIGHTHPC_SHARD_INPUT": str(sample),
        "LIGHTHPC_SHARD_OUTPUT": out,
        "LIGHTHPC_SHARD_CHECKPOINT": ckpt,
    }
    assert done.stats["outputBytes"] == done.result.stat().st_size


@pytest.mark.parametrize(
    "name", ["a;rm -rf x$(id).smi", "b`touch pwned`|x&&touch pwned.smi", "{output} $HOME.smi"]
)
def test_hostile_input_names_reach_the_child_literally(
    tmp_path: Path, work_dir: Path, name: str
) -> None:
    hostile = tmp_path / name
    hostile.write_text("C\n")
    done = WORKLOAD.run(
        SHARD, _inputs(hostile, _py(ECHO, "{input}")), ShardContext(work_dir=work_dir)
    )
    assert isinstance(done, ShardDone)
    seen = _echo(done)
    assert seen["argv"] == [str(hostile)]
    assert seen["env"]["LIGHTHPC_SHARD_INPUT"] == str(hostile)
    for where in (tmp_path, work_dir, Path.cwd()):
        assert not (where / "x").exists()
        assert not (where / "pwned").exists()


def test_nonzero_exit_fails_with_the_stderr_tail(sample: Path, work_dir: Path) -> None:
    script = "import sys; sys.stderr.write('noise ' * 5000 + 'boom: bad input row 3'); sys.exit(3)"
    with pytest.raises(ShardFailed, match="exited with code 3") as info:
        WORKLOAD.run(SHARD, _inputs(sample, _py(script)), ShardContext(work_dir=work_dir))
    message = str(info.value)
    assert message.endswith("boom: bad input row 3")
    assert len(message) < TAIL_BYTES + 200
    assert type(info.value).__name__ == "Shard.Failed"


def test_exit_zero_without_output_fails(sample: Path, work_dir: Path) -> None:
    with pytest.raises(ShardFailed, match="wrote no output file"):
        WORKLOAD.run(SHARD, _inputs(sample, _py("pass")), ShardContext(work_dir=work_dir))


def test_missing_executable_fails(sample: Path, work_dir: Path) -> None:
    argv = [str(work_dir / "no-such-tool")]
    with pytest.raises(ShardFailed, match="cannot start"):
        WORKLOAD.run(SHARD, _inputs(sample, argv), ShardContext(work_dir=work_dir))


def test_timeout_kills_the_process_group(sample: Path, work_dir: Path) -> None:
    opts = {"timeoutSeconds": 0.5, "graceSeconds": 0.2}
    began = time.monotonic()
    with pytest.raises(ShardFailed, match=r"timed out after 0\.5 s"):
        WORKLOAD.run(
            SHARD, _inputs(sample, _py("import time; time.sleep(60)"), **opts), _Ctx(work_dir).ctx
        )
    assert time.monotonic() - began < 10


def test_grandchildren_do_not_outlive_the_shard(sample: Path, work_dir: Path) -> None:
    script = (
        "import os, subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "open(os.environ['LIGHTHPC_SHARD_OUTPUT'], 'w').write(str(child.pid))\n"
    )
    began = time.monotonic()
    done = WORKLOAD.run(SHARD, _inputs(sample, _py(script)), ShardContext(work_dir=work_dir))
    assert isinstance(done, ShardDone)
    assert time.monotonic() - began < 10

    def gone(pid: int = int(done.result.read_text())) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    _wait_for(gone)


def test_stop_sends_sigterm_and_returns_the_checkpoint_then_resume_delivers_it(
    sample: Path, tmp_path: Path, work_dir: Path
) -> None:
    ready = tmp_path / "ready"
    recorder = _Ctx(work_dir)
    recorder.ctx.stop_requested = ready.exists
    inputs = _inputs(sample, _py(CHECKPOINTS_ON_SIGTERM, str(ready)), graceSeconds=10)
    stopped = WORKLOAD.run(SHARD, inputs, recorder.ctx)
    assert isinstance(stopped, ShardStopped)
    assert json.loads(stopped.checkpoint) == {"position": 74, "state": "half"}
    assert stopped.position == 74
    assert recorder.saved == [(stopped.checkpoint, 74)]

    again = tmp_path / "again"
    again.mkdir()
    done = WORKLOAD.run(
        SHARD, _inputs(sample, _py(RESUMES)), _Ctx(again, resume=stopped.checkpoint).ctx
    )
    assert isinstance(done, ShardDone)
    assert done.result.read_bytes() == stopped.checkpoint


def test_stop_kills_a_child_that_ignores_sigterm(
    sample: Path, tmp_path: Path, work_dir: Path
) -> None:
    ready = tmp_path / "ready"
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open(sys.argv[1], 'w').close()\n"
        "time.sleep(60)\n"
    )
    recorder = _Ctx(work_dir)
    recorder.ctx.stop_requested = ready.exists
    began = time.monotonic()
    stopped = WORKLOAD.run(
        SHARD, _inputs(sample, _py(script, str(ready)), graceSeconds=0.3), recorder.ctx
    )
    assert stopped == ShardStopped(checkpoint=b"", position=70)
    assert recorder.saved == []
    assert time.monotonic() - began < 10


def test_a_stale_checkpoint_is_not_offered_without_resume(sample: Path, work_dir: Path) -> None:
    (work_dir / "m1-s007.checkpoint").write_text('{"position": 79}')
    script = (
        "import os\n"
        "seen = os.path.exists(os.environ['LIGHTHPC_SHARD_CHECKPOINT'])\n"
        "open(os.environ['LIGHTHPC_SHARD_OUTPUT'], 'w').write(str(seen))\n"
    )
    done = WORKLOAD.run(SHARD, _inputs(sample, _py(script)), ShardContext(work_dir=work_dir))
    assert isinstance(done, ShardDone)
    assert done.result.read_text() == "False"


def test_checkpoints_written_while_running_are_forwarded(
    sample: Path, tmp_path: Path, work_dir: Path
) -> None:
    go = tmp_path / "go"
    script = (
        "import json, os, sys, time\n"
        "ckpt = os.environ['LIGHTHPC_SHARD_CHECKPOINT']\n"
        "open(ckpt + '.tmp', 'w').write(json.dumps({'position': 73}))\n"
        "os.replace(ckpt + '.tmp', ckpt)\n"
        "deadline = time.monotonic() + 20\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    if time.monotonic() > deadline: sys.exit(9)\n"
        "    time.sleep(0.01)\n"
        "open(os.environ['LIGHTHPC_SHARD_OUTPUT'], 'w').write('done')\n"
    )
    recorder = _Ctx(work_dir)
    recorder.on_save = go.touch
    done = WORKLOAD.run(SHARD, _inputs(sample, _py(script, str(go))), recorder.ctx)
    assert isinstance(done, ShardDone)
    assert recorder.saved == [(b'{"position": 73}', 73)]
    assert recorder.progress == [73]


@pytest.mark.parametrize(
    "options",
    [{}, {"argv": "python -c pass"}, {"argv": []}, {"argv": ["python", 3]}, {"argv": [""]}],
)
def test_bad_argv_is_invalid_input(sample: Path, options: dict[str, Any]) -> None:
    with pytest.raises(MissionInvalidInput, match="argv"):
        WORKLOAD.validate(WorkInputs(sample=sample, options=options))


@pytest.mark.parametrize(
    "options", [{"timeoutSeconds": 0}, {"graceSeconds": -1}, {"timeoutSeconds": "9"}]
)
def test_bad_limits_are_invalid_input(sample: Path, options: dict[str, Any]) -> None:
    with pytest.raises(MissionInvalidInput, match="Seconds"):
        WORKLOAD.validate(_inputs(sample, ["true"], **options))


def test_validate_counts_non_empty_lines_or_the_items_option(sample: Path, tmp_path: Path) -> None:
    assert WORKLOAD.validate(_inputs(sample, ["true"])).items == 3
    assert WORKLOAD.count_items(_inputs(sample, ["true"], items=42)) == 42
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(MissionInvalidInput, match="not UTF-8"):
        WORKLOAD.validate(_inputs(binary, ["true"]))


def test_reduce_concatenates_in_shard_order(sample: Path, tmp_path: Path) -> None:
    parts = []
    for i, data in enumerate([b"first\n", b"", b"\x00binary\xff", b"last"]):
        part = tmp_path / f"p{i}"
        part.write_bytes(data)
        parts.append(part)
    out = tmp_path / "out"
    summary = WORKLOAD.reduce(parts, out, _inputs(sample, ["true"]))
    assert out.read_bytes() == b"first\n\x00binary\xfflast"
    assert summary == {"shards": 4, "bytes": len(out.read_bytes())}
    assert os.path.getsize(out) == summary["bytes"]


# ---- who the child runs as -------------------------------------------------------------

WORKER = pwd.struct_passwd(
    ("lighthpc-work", "x", 1001, 1002, "", "/home/lighthpc-work", "/bin/false")
)


def _no_lookup(name: str) -> pwd.struct_passwd:
    raise AssertionError(f"an agent that is not root looked up {name!r}")


def _missing(name: str) -> pwd.struct_passwd:
    raise KeyError(name)


def test_an_agent_that_is_not_root_runs_the_child_as_itself() -> None:
    assert work_user(1000, DEFAULT_WORK_USER, _no_lookup) is None


def test_the_local_pool_of_a_root_developer_runs_the_child_as_the_agent() -> None:
    assert work_user(0, DEFAULT_WORK_USER, _no_lookup, local_root=True) is None


def test_a_root_agent_runs_the_child_as_the_work_user() -> None:
    user = work_user(0, "lighthpc-work", {"lighthpc-work": WORKER}.__getitem__)
    assert user == WorkUser("lighthpc-work", 1001, 1002, "/home/lighthpc-work")
    assert user.environment()["HOME"] == "/home/lighthpc-work"


@pytest.mark.parametrize(
    "lookup",
    [_missing, lambda name: pwd.struct_passwd((name, "x", 0, 0, "", "/root", "/bin/sh"))],
    ids=["missing", "uid-0-alias"],
)
def test_a_root_agent_without_a_work_user_refuses_by_name(
    lookup: Callable[[str], pwd.struct_passwd],
) -> None:
    with pytest.raises(CommandRunsAsRoot) as refused:
        work_user(0, DEFAULT_WORK_USER, lookup)
    assert isinstance(refused.value, ShardFailed)  # the shard fails; the agent reports it
    assert type(refused.value).__name__ == "Command.RunsAsRoot"
    assert str(refused.value).startswith("Command.RunsAsRoot: ")
    assert DEFAULT_WORK_USER in str(refused.value)


WHO = """
import json, os
who = {"uid": os.getuid(), "euid": os.geteuid(), "groups": os.getgroups()}
who["home"] = os.environ["HOME"]
open(os.environ["LIGHTHPC_SHARD_OUTPUT"], "w").write(json.dumps(who))
"""


def test_the_child_never_runs_as_root(sample: Path, work_dir: Path) -> None:
    """As root, the child really runs as the work user (``nobody`` here); else as us."""
    done = WORKLOAD.run(SHARD, _inputs(sample, _py(WHO)), ShardContext(work_dir=work_dir))
    assert isinstance(done, ShardDone)
    who = json.loads(done.result.read_text())
    assert who["uid"] != 0 and who["euid"] != 0 and 0 not in who["groups"]
    if os.geteuid() == 0:
        assert who["uid"] == pwd.getpwnam("nobody").pw_uid
        assert who["home"] == pwd.getpwnam("nobody").pw_dir
    else:
        assert who["uid"] == os.getuid()


def test_a_root_agent_refuses_when_the_work_user_is_missing(
    sample: Path, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # the decision as a root agent takes it
    monkeypatch.setenv(WORK_USER_ENV, "lighthpc-no-such-user")
    monkeypatch.delenv(LOCAL_ROOT_ENV, raising=False)
    marker = work_dir / "ran"
    argv = _py("import sys; open(sys.argv[1], 'w').close()", str(marker))
    with pytest.raises(CommandRunsAsRoot):
        WORKLOAD.run(SHARD, _inputs(sample, argv), ShardContext(work_dir=work_dir))
    assert not marker.exists()  # nothing ran
