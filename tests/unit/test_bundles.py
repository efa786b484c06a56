"""Job bundles: the archive verifier and extractor, the manifest, pinning at planning, the
node's staging, and the ``sumCsv`` reduce. Hostile archives are built here byte by byte, the
way an attacker would, not through the packer that refuses them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node_agent.inputs import stage_bundle, stage_inputs
from tests.fakes import FakeCloud
from workflow import bundles
from workflow.bundles import (
    MANIFEST_NAME,
    BundleRef,
    extract_bundle,
    inspect_bundle,
    missing_requirements,
    pack_bytes,
    pack_directory,
    resolve_entry,
)
from workflow.errors import BundleInvalid, MissionInvalidInput, ShardFailed
from workflow.params import MissionParams
from workflow.planning import plan_mission
from workflow.request import SampleRef
from workflow.workloads.base import WorkInputs
from workflow.workloads.command import CommandWorkload
from workflow.workloads.csv_sum import sum_csv

MANIFEST = {"entry": ["{python}", "{bundle}/run.py", "{start}"], "reduce": "sumCsv"}
GOOD = {MANIFEST_NAME: json.dumps(MANIFEST).encode(), "run.py": b"print('hi')\n"}


def tar_gz(path: Path, build: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        build(tar)
    return path


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def add_special(tar: tarfile.TarFile, name: str, kind: bytes, target: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    tar.addfile(info)


def with_good(extra: Callable[[tarfile.TarFile], None]) -> Callable[[tarfile.TarFile], None]:
    def build(tar: tarfile.TarFile) -> None:
        for name, data in GOOD.items():
            add_file(tar, name, data)
        extra(tar)

    return build


HOSTILE_TARS: dict[str, tuple[Callable[[tarfile.TarFile], None], str]] = {
    "absolute path": (with_good(lambda t: add_file(t, "/etc/evil", b"x")), "absolute path"),
    "dot-dot": (with_good(lambda t: add_file(t, "a/../../evil", b"x")), "escapes"),
    "symlink": (
        with_good(lambda t: add_special(t, "link", tarfile.SYMTYPE, "/etc/passwd")),
        "is a link",
    ),
    "hard link": (
        with_good(lambda t: add_special(t, "hard", tarfile.LNKTYPE, "/etc/passwd")),
        "is a link",
    ),
    "device": (with_good(lambda t: add_special(t, "dev", tarfile.CHRTYPE)), "device"),
    "fifo": (with_good(lambda t: add_special(t, "fifo", tarfile.FIFOTYPE)), "special file"),
    "backslash": (with_good(lambda t: add_file(t, "..\\evil", b"x")), "plain relative"),
    "twice": (with_good(lambda t: add_file(t, "run.py", b"again")), "appears twice"),
    "file under a file": (with_good(lambda t: add_file(t, "run.py/x", b"x")), "lies under"),
    "no manifest": (lambda t: add_file(t, "run.py", b"x"), f"has no {MANIFEST_NAME}"),
    "manifest not JSON": (
        lambda t: (add_file(t, MANIFEST_NAME, b"{entry"), add_file(t, "run.py", b"")),
        "is not JSON",
    ),
    "manifest unknown field": (
        lambda t: add_file(t, MANIFEST_NAME, json.dumps({"entry": ["x"], "shell": 1}).encode()),
        "lighthpc-job.json.shell: unknown parameter",
    ),
    "manifest empty entry": (
        lambda t: add_file(t, MANIFEST_NAME, json.dumps({"entry": []}).encode()),
        "lighthpc-job.json.entry",
    ),
    "manifest bad reduce": (
        lambda t: add_file(
            t, MANIFEST_NAME, json.dumps({"entry": ["x"], "reduce": "max"}).encode()
        ),
        "lighthpc-job.json.reduce",
    ),
    "manifest bad requirement": (
        lambda t: add_file(
            t, MANIFEST_NAME, json.dumps({"entry": ["x"], "requirements": ["a; rm -rf /"]}).encode()
        ),
        "is not NAME or NAME==VERSION",
    ),
    "entry not in bundle": (
        lambda t: add_file(t, MANIFEST_NAME, json.dumps(MANIFEST).encode()),
        "names {bundle}/run.py, not in the bundle",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TARS))
def test_a_hostile_tar_is_refused_by_name_and_nothing_is_extracted(
    case: str, tmp_path: Path
) -> None:
    build, says = HOSTILE_TARS[case]
    archive = tar_gz(tmp_path / "b.tar.gz", build)
    target = tmp_path / "out"
    with pytest.raises(BundleInvalid, match=says.replace("{", r"\{").replace("}", r"\}")):
        extract_bundle(archive, target)
    assert not target.exists()
    assert not (tmp_path / "evil").exists()


def test_a_zip_symlink_and_a_zip_escape_are_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    for member, says in ((link, "is a link"), (zipfile.ZipInfo("../evil"), "escapes")):
        path = tmp_path / "b.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in GOOD.items():
                zf.writestr(name, data)
            zf.writestr(member, b"/etc/passwd")
        with pytest.raises(BundleInvalid, match=says):
            inspect_bundle(path)


def test_counts_and_sizes_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(pack_bytes({**GOOD, "data.bin": b"x" * 1000}))
    assert inspect_bundle(archive).unpacked_bytes > 1000
    monkeypatch.setattr(bundles, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(BundleInvalid, match="unpacks to more than"):
        inspect_bundle(archive)
    monkeypatch.setattr(bundles, "MAX_MEMBERS", 2)
    with pytest.raises(BundleInvalid, match="more than 2 members"):
        inspect_bundle(archive)
    monkeypatch.setattr(bundles, "MAX_ARCHIVE_BYTES", 10)
    with pytest.raises(BundleInvalid, match="bytes, more than"):
        inspect_bundle(archive)


def test_not_an_archive_and_a_damaged_one_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "b.txt"
    text.write_text("hello")
    with pytest.raises(BundleInvalid, match=r"not a \.zip or \.tar\.gz"):
        inspect_bundle(text)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(pack_bytes(GOOD)[:40])
    with pytest.raises(BundleInvalid, match="damaged archive"):
        inspect_bundle(cut)


def test_a_member_longer_than_it_declares_is_refused(tmp_path: Path) -> None:
    """A zip's declared size can lie; the copy counts what it actually reads."""
    member = bundles.Member(bundles.PurePosixPath("x"), "x", False, 3, False)
    with pytest.raises(BundleInvalid, match="holds more than it declares"):
        bundles._write_member(io.BytesIO(b"four"), tmp_path / "x", member)


NAME_PART = st.sampled_from(["a", "b", "..", ".", "", "c.py", "..\\x", "/", "d"])
NAMES = st.lists(st.lists(NAME_PART, min_size=1, max_size=5).map("/".join), max_size=8)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=NAMES)
def test_every_accepted_archive_extracts_inside_its_target(
    names: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("prop")
    archive = root / "b.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, MANIFEST_NAME, json.dumps({"entry": ["true"]}).encode())
        for name in names:
            add_file(tar, name, name.encode())
    target = root / "sandbox" / "out"
    try:
        listing = extract_bundle(archive, target)
    except BundleInvalid:
        assert not target.exists() or not any(target.iterdir())
        return
    inside = target.resolve()
    written = list((root / "sandbox").rglob("*"))
    for path in written:
        assert not path.is_symlink()
        assert path.resolve() == inside or inside in path.resolve().parents, path
    files = sorted(str(p.relative_to(target)) for p in written if p.is_file())
    assert files == sorted(str(m.path) for m in listing.members if not m.is_dir)


def test_extracted_files_are_readable_and_only_packed_executables_run(tmp_path: Path) -> None:
    def build(tar: tarfile.TarFile) -> None:
        add_file(tar, MANIFEST_NAME, json.dumps({"entry": ["{bundle}/bin/run"]}).encode(), 0o600)
        add_file(tar, "bin/run", b"#!/bin/sh\n", 0o4700)  # setuid is not carried over

    target = tmp_path / "out"
    extract_bundle(tar_gz(tmp_path / "b.tar.gz", build), target)
    assert stat.S_IMODE((target / MANIFEST_NAME).stat().st_mode) == 0o644
    assert stat.S_IMODE((target / "bin" / "run").stat().st_mode) == 0o755


def test_the_packer_is_reproducible_and_refuses_links(tmp_path: Path) -> None:
    src = tmp_path / "job"
    (src / "__pycache__").mkdir(parents=True)
    (src / "__pycache__" / "x.pyc").write_bytes(b"junk")
    for name, data in GOOD.items():
        (src / name).write_bytes(data)
    first = pack_directory(src, tmp_path / "1.tar.gz").read_bytes()
    os.utime(src / "run.py", (1, 1))
    assert pack_directory(src, tmp_path / "2.tar.gz").read_bytes() == first
    listing = inspect_bundle(tmp_path / "1.tar.gz")
    assert sorted(str(m.path) for m in listing.members) == sorted(GOOD)
    (src / "link").symlink_to("/etc/passwd")
    with pytest.raises(BundleInvalid, match="is a link"):
        pack_directory(src, tmp_path / "3.tar.gz")


def test_entry_placeholders_are_resolved_once_and_the_command_ones_are_kept() -> None:
    entry = ["{python}", "{bundle}/run.py", "{start}", "{output}"]
    resolved = resolve_entry(entry, Path("/w/{python}"), "/usr/bin/python3")
    assert resolved == ["/usr/bin/python3", "/w/{python}/run.py", "{start}", "{output}"]


def test_requirements_come_from_what_the_node_has_installed() -> None:
    have = {"numpy": "2.0.0"}

    def installed(name: str) -> str:
        if name not in have:
            raise bundles.PackageNotFoundError(name)
        return have[name]

    assert missing_requirements(["numpy", "numpy==2.0.0"], installed) == []
    assert missing_requirements(["numpy==1.0", "scipy"], installed) == [
        "numpy==1.0 (node has 2.0.0)",
        "scipy",
    ]


# ---- planning and the node ------------------------------------------------------------------

SAMPLE = b"".join(f"read-{i}\n".encode() for i in range(5))
SRC = "lighthpc-source"


def plan(cloud: FakeCloud, bundle: bytes | None, **params: Any) -> str:
    cloud.objects.put_bytes(SRC, "incoming/reads.txt", SAMPLE)
    if bundle is not None:
        cloud.objects.put_bytes(SRC, "bundles/job.tar.gz", bundle)
    event = {
        "input": {"bucket": SRC, "key": "incoming/reads.txt"},
        "params": {
            "workload": "command",
            "shards": 2,
            "bundle": f"s3://{SRC}/bundles/job.tar.gz",
            **params,
        },
    }
    return plan_mission(event, "arn:execution", cloud.ports).mission_id


def test_planning_pins_the_bundle_version_and_sha256_and_takes_the_manifest() -> None:
    cloud = FakeCloud()
    body = pack_bytes(GOOD)
    mission = cloud.store.get_mission(plan(cloud, body, shardTimeoutSeconds=30))
    assert mission.bundle is not None
    assert mission.bundle.ref.version_id == "1" and mission.bundle.ref.size == len(body)
    assert mission.bundle.sha256 == _sha(body)
    params = mission.mission_params()
    assert params.argv == tuple(MANIFEST["entry"])
    assert params.reduce == "sumCsv" and params.shard_timeout_seconds == 30
    assert BundleRef.from_item(mission.bundle.to_item()) == mission.bundle
    # a new bundle version is a new mission, not a duplicate
    cloud.objects.put_bytes(SRC, "incoming/reads.txt", SAMPLE)
    again = pack_bytes({**GOOD, "run.py": b"print('v2')\n"})
    assert plan(cloud, again) != mission.mission_id


@pytest.mark.parametrize(
    ("bundle", "params", "says"),
    [
        (None, {}, r"cannot be read \(NoSuchKey\)"),
        (b"not an archive", {}, r"bundle s3://.*: not a \.zip"),
        (pack_bytes({"run.py": b""}), {}, f"has no {MANIFEST_NAME}"),
        (pack_bytes({**GOOD, "../x": b""}), {}, "escapes the bundle directory"),
        (pack_bytes(GOOD), {"argv": ["/bin/sh", "-c", "x"]}, "params.argv: bundle"),
        (pack_bytes(GOOD), {"workload": "noop"}, "a bundle runs as workload 'command'"),
    ],
)
def test_planning_refuses_a_bad_bundle_before_any_write(
    bundle: bytes | None, params: dict[str, Any], says: str
) -> None:
    cloud = FakeCloud()
    with pytest.raises(MissionInvalidInput, match=says):
        plan(cloud, bundle, **params)
    assert cloud.store.missions == {} and cloud.store.trans == {}


def test_planning_refuses_an_oversized_bundle_from_its_head(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("workflow.planning.MAX_ARCHIVE_BYTES", 100)
    cloud = FakeCloud()
    with pytest.raises(MissionInvalidInput, match="bytes, more than"):
        plan(cloud, pack_bytes({**GOOD, "big": os.urandom(4000)}))
    assert cloud.store.missions == {}


def test_the_node_stages_the_pinned_bundle_and_refuses_other_bytes(tmp_path: Path) -> None:
    cloud = FakeCloud()
    body = pack_bytes(GOOD)
    cloud.objects.put_bytes(SRC, "b.tar.gz", body)
    cloud.objects.put_bytes(SRC, "b.tar.gz", pack_bytes({**GOOD, "run.py": b"evil"}))
    cloud.objects.put_bytes(SRC, "s.txt", SAMPLE)
    pinned = BundleRef(SampleRef(SRC, "b.tar.gz", version_id="1"), sha256=_sha(body))
    params = MissionParams.model_validate(
        {"workload": "command", "bundle": f"s3://{SRC}/b.tar.gz", "argv": MANIFEST["entry"]}
    )
    staged = stage_inputs(
        cloud.objects,
        SampleRef(SRC, "s.txt"),
        params,
        tmp_path / "w",
        tmp_path / "c",
        library=None,
        bundle=pinned,
    )
    bundle_dir = tmp_path / "w" / "bundle"
    assert (bundle_dir / "run.py").read_bytes() == GOOD["run.py"]  # version 1, not the latest
    assert staged.inputs.options["argv"][1] == f"{bundle_dir}/run.py"
    assert not (tmp_path / "w" / "bundle.archive").exists()
    tampered = BundleRef(SampleRef(SRC, "b.tar.gz", version_id="2"), sha256=_sha(body))
    with pytest.raises(BundleInvalid, match=r"not the .* pinned at planning"):
        stage_bundle(cloud.objects, tampered, tmp_path / "w2")


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# ---- the sumCsv reduce --------------------------------------------------------------------------


def test_sum_csv_sums_per_key_keeps_one_header_and_sorts(tmp_path: Path) -> None:
    shards = []
    for i, body in enumerate(["kmer,count\nAC,2\nGT,1\n", "kmer,count\nGT,4\nAA,1\n", ""]):
        shards.append(tmp_path / f"s{i}.out")
        shards[-1].write_text(body)
    out = tmp_path / "result.out"
    summary = CommandWorkload().reduce(
        shards, out, WorkInputs(tmp_path, options={"reduce": "sumCsv"})
    )
    assert out.read_text() == "kmer,count\nAA,1\nAC,2\nGT,5\n"
    assert summary == {"shards": 3, "keys": 3, "total": 8}
    concatenated = CommandWorkload().reduce(shards, out, WorkInputs(tmp_path))
    assert concatenated["bytes"] == sum(p.stat().st_size for p in shards)


def test_sum_csv_refuses_rows_it_cannot_sum(tmp_path: Path) -> None:
    bad = tmp_path / "s.out"
    bad.write_text("AC,2\nGT,many\n")
    with pytest.raises(ShardFailed, match="line 2: not 'key,count'"):
        sum_csv([bad], tmp_path / "r")
    other = tmp_path / "t.out"
    other.write_text("word,n\nx,1\n")
    first = tmp_path / "u.out"
    first.write_text("kmer,count\nx,1\n")
    with pytest.raises(ShardFailed, match="different headers"):
        sum_csv([first, other], tmp_path / "r")
