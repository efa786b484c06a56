"""Job bundles: the user's program and its manifest in one ``.zip`` or ``.tar.gz``.

A bundle is checked three times with the same code: by the CLI before anything starts, by
PlanMission before anything is written (which also records its sha256), and by every node
before it extracts (same sha256, same member checks), so a node never trusts an archive more
than planning did. Extraction is not ``extractall``: each member is checked (no absolute
path, no ``..``, no link, no device, bounded count and size), written with ``O_EXCL`` and
``O_NOFOLLOW`` under the target, and its actual byte count is enforced (a zip's declared
sizes can lie).

The manifest, ``lighthpc-job.json`` at the bundle's root (``examples/kmer/job/`` has one):
``entry`` (argv), optional ``timeoutSeconds``, ``graceSeconds``, ``requirements``, ``reduce``.
``entry`` becomes the ``command`` workload's argv: ``{bundle}`` is the extracted directory and
``{python}`` the node's interpreter (built from the node's wheelhouse), resolved on the node;
the ``command`` placeholders (``{start}``, ``{output}``, ...) pass through to it untouched.
``requirements`` name distributions that must be installed in that interpreter (nothing is
fetched from an index). The other fields are the mission params of the same names' defaults.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workflow.errors import BundleInvalid
from workflow.params import PARAMS, ReduceMode, describe_validation_error
from workflow.request import SampleRef

MANIFEST_NAME: Final = "lighthpc-job.json"
# Limits of one bundle: a program and its small data, not a dataset (the sample is the data).
MAX_ARCHIVE_BYTES: Final = 64 * 1024 * 1024
MAX_UNPACKED_BYTES: Final = 256 * 1024 * 1024
MAX_MEMBERS: Final = 4096
MAX_MANIFEST_BYTES: Final = 64 * 1024
MAX_NAME_CHARS: Final = 1024
_COPY_CHUNK = 1024 * 1024
_BUNDLE_REF = re.compile(r"\{bundle\}/([^{}\s]+)")
_ENTRY_PLACEHOLDER = re.compile(r"\{(bundle|python)\}")
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:==([A-Za-z0-9.+!_-]+))?$")


class BundleManifest(BaseModel):
    """``lighthpc-job.json``: what to run and how long one shard may take."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    entry: tuple[str, ...] = Field(min_length=1, max_length=PARAMS["argv"].high)
    timeout_seconds: int | None = Field(
        None,
        alias="timeoutSeconds",
        ge=PARAMS["shardTimeoutSeconds"].low,
        le=PARAMS["shardTimeoutSeconds"].high,
    )
    grace_seconds: int | None = Field(
        None, alias="graceSeconds", ge=PARAMS["graceSeconds"].low, le=PARAMS["graceSeconds"].high
    )
    requirements: tuple[str, ...] = Field((), max_length=64)
    reduce: ReduceMode | None = None

    def mission_params(self) -> dict[str, Any]:
        """The mission params this manifest sets (a mission's own params override them,
        except ``argv``, which only the manifest may name)."""
        params: dict[str, Any] = {"argv": list(self.entry)}
        if self.timeout_seconds is not None:
            params["shardTimeoutSeconds"] = self.timeout_seconds
        if self.grace_seconds is not None:
            params["graceSeconds"] = self.grace_seconds
        if self.reduce is not None:
            params["reduce"] = self.reduce
        return params

    def referenced_files(self) -> list[str]:
        """The bundle paths the entry names as ``{bundle}/<path>``."""
        return [m.group(1) for arg in self.entry for m in _BUNDLE_REF.finditer(arg)]


@dataclass(frozen=True)
class BundleRef:
    """A bundle pinned at planning: the object version every node reads, and its sha256."""

    ref: SampleRef
    sha256: str

    def to_item(self) -> dict[str, Any]:
        ref = self.ref
        return {
            "bucket": ref.bucket,
            "key": ref.key,
            "etag": ref.etag,
            "versionId": ref.version_id,
            "size": ref.size,
            "sha256": self.sha256,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> BundleRef:
        size = item.get("size")
        ref = SampleRef(
            bucket=str(item["bucket"]),
            key=str(item["key"]),
            etag=item.get("etag"),
            version_id=item.get("versionId"),
            size=None if size is None else int(size),
        )
        return cls(ref=ref, sha256=str(item["sha256"]))


@dataclass(frozen=True)
class Member:
    """One archive member that passed the checks: a safe relative path."""

    path: PurePosixPath
    stored: str  # the name in the archive (``./x`` in a tar made with ``-C dir .``)
    is_dir: bool
    size: int
    executable: bool


@dataclass(frozen=True)
class BundleListing:
    """What a verified bundle holds."""

    members: tuple[Member, ...]
    manifest: BundleManifest

    @property
    def unpacked_bytes(self) -> int:
        return sum(m.size for m in self.members)


# ---- reading archives ------------------------------------------------------------------


def safe_member_path(name: str) -> PurePosixPath | None:
    """``name`` as a relative path that stays under the extraction directory; None for the
    root itself (``./``). Raises ``Bundle.Invalid`` for anything that could leave it."""
    if not name or len(name) > MAX_NAME_CHARS or "\0" in name or "\\" in name:
        raise BundleInvalid(f"member name {name[:80]!r} is not a plain relative path")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise BundleInvalid(f"member {name[:80]!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BundleInvalid(f"member {name[:80]!r} escapes the bundle directory (..)")
    return PurePosixPath(*parts) if parts else None


def _tar_members(archive: tarfile.TarFile) -> Iterator[tuple[str, bool, int, int]]:
    for info in archive:
        if not (info.isreg() or info.isdir()):
            kind = "link" if info.issym() or info.islnk() else "device or special file"
            raise BundleInvalid(f"member {info.name[:80]!r} is a {kind}; only files and folders")
        yield info.name, info.isdir(), info.size, info.mode


def _zip_members(archive: zipfile.ZipFile) -> Iterator[tuple[str, bool, int, int]]:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            what = "link" if kind == stat.S_IFLNK else "device or special file"
            name = info.filename[:80]
            raise BundleInvalid(f"member {name!r} is a {what}; only files and folders")
        yield info.filename, info.is_dir(), info.file_size, mode


@contextmanager
def _opened(path: Path) -> Iterator[tuple[Any, Callable[[str], IO[bytes]]]]:
    """The archive at ``path`` and a way to read one member, whatever its format."""
    with path.open("rb") as handle:
        magic = handle.read(4)
    try:
        if magic.startswith(b"PK\x03\x04") or magic.startswith(b"PK\x05\x06"):
            with zipfile.ZipFile(path) as zf:
                yield _zip_members(zf), zf.open
        elif magic.startswith(b"\x1f\x8b"):
            with tarfile.open(path, mode="r:gz") as tf:

                def read(name: str) -> IO[bytes]:
                    # By TarInfo, not name: getmember() strips a trailing "/" ("a//").
                    infos = {info.name: info for info in tf.getmembers()}
                    stream = tf.extractfile(infos[name])
                    if stream is None:
                        raise BundleInvalid(f"member {name!r} is not a file")
                    return stream

                yield _tar_members(tf), read
        else:
            raise BundleInvalid("not a .zip or .tar.gz archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, gzip.BadGzipFile, OSError) as exc:
        raise BundleInvalid(f"damaged archive ({exc})") from exc


def _checked_members(entries: Iterator[tuple[str, bool, int, int]]) -> tuple[Member, ...]:
    members: dict[PurePosixPath, Member] = {}
    total = 0
    for name, is_dir, size, mode in entries:
        if len(members) >= MAX_MEMBERS:
            raise BundleInvalid(f"more than {MAX_MEMBERS} members")
        path = safe_member_path(name)
        if path is None:
            continue
        total += size
        if total > MAX_UNPACKED_BYTES:
            raise BundleInvalid(f"unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB")
        if path in members:
            raise BundleInvalid(f"member {str(path)!r} appears twice")
        members[path] = Member(path, name, is_dir, 0 if is_dir else size, bool(mode & 0o111))
    for member in members.values():
        for parent in member.path.parents:
            above = members.get(parent)
            if above is not None and not above.is_dir:
                raise BundleInvalid(f"member {str(member.path)!r} lies under file {str(parent)!r}")
    return tuple(members.values())


def parse_manifest(data: bytes) -> BundleManifest:
    if len(data) > MAX_MANIFEST_BYTES:
        raise BundleInvalid(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES // 1024} KiB")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleInvalid(f"{MANIFEST_NAME} is not JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise BundleInvalid(f"{MANIFEST_NAME} must be a JSON object")
    try:
        manifest = BundleManifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleInvalid(describe_validation_error(exc, MANIFEST_NAME)) from exc
    for requirement in manifest.requirements:
        if not _REQUIREMENT.match(requirement):
            raise BundleInvalid(
                f"{MANIFEST_NAME}.requirements: {requirement[:80]!r} is not NAME or NAME==VERSION"
            )
    return manifest


def inspect_bundle(archive: Path) -> BundleListing:
    """Verify ``archive`` without extracting it: size, members, manifest, entry files."""
    size = archive.stat().st_size
    if size > MAX_ARCHIVE_BYTES:
        raise BundleInvalid(f"is {size} bytes, more than {MAX_ARCHIVE_BYTES // 2**20} MiB")
    with _opened(archive) as (entries, read):
        members = _checked_members(entries)
        files = {str(m.path): m for m in members if not m.is_dir}
        if MANIFEST_NAME not in files:
            raise BundleInvalid(f"has no {MANIFEST_NAME} at its root")
        with read(files[MANIFEST_NAME].stored) as stream:
            manifest = parse_manifest(stream.read(MAX_MANIFEST_BYTES + 1))
    for path in manifest.referenced_files():
        if path not in files:
            raise BundleInvalid(f"{MANIFEST_NAME}.entry names {{bundle}}/{path}, not in the bundle")
    return BundleListing(members, manifest)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ---- extracting ------------------------------------------------------------------------


def _write_member(source: IO[bytes], target: Path, member: Member) -> None:
    """Copy exactly ``member.size`` bytes into a new file (never through a link)."""
    mode = 0o755 if member.executable else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(target, flags, mode)
    written = 0
    with os.fdopen(fd, "wb") as sink:
        while chunk := source.read(_COPY_CHUNK):
            written += len(chunk)
            if written > member.size:
                raise BundleInvalid(f"member {str(member.path)!r} holds more than it declares")
            sink.write(chunk)
    os.chmod(target, mode)  # the umask must not take the work user's read bit away


def extract_bundle(archive: Path, dest: Path) -> BundleListing:
    """Verify ``archive`` and extract it into the empty or new directory ``dest``; every
    file is readable by the unprivileged work user, executable only if it was packed so."""
    listing = inspect_bundle(archive)
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o755)  # noqa: S103 -- the unprivileged work user reads the program
    root = dest.resolve()
    with _opened(archive) as (_entries, read):
        for member in listing.members:
            target = root.joinpath(*member.path.parts)
            if root not in target.parents:  # unreachable after the checks: belt and braces
                raise BundleInvalid(f"member {str(member.path)!r} escapes the bundle directory")
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            if member.is_dir:
                target.mkdir(mode=0o755, exist_ok=True)
                continue
            with read(member.stored) as source:
                _write_member(source, target, member)
    return listing


# ---- packing (the CLI's --bundle DIR) ----------------------------------------------------

_SKIPPED = frozenset({"__pycache__", ".git"})


def pack_directory(source: Path, out: Path) -> Path:
    """Archive ``source`` as a reproducible ``.tar.gz`` (sorted, no times, no owners);
    a link inside it is refused rather than followed."""
    with (
        out.open("wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in _walk(source):
            info = tarfile.TarInfo(path.relative_to(source).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            info.size = path.stat().st_size
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return out


def _walk(source: Path) -> Iterator[Path]:
    for path in sorted(source.iterdir()):
        if path.name in _SKIPPED:
            continue
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise BundleInvalid(f"{path} is a link or special file; bundles hold files only")
        yield path
        if path.is_dir():
            yield from _walk(path)


def pack_bytes(files: Mapping[str, bytes]) -> bytes:
    """A ``.tar.gz`` of ``files`` (name -> content), for tests and small tools."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# ---- running ----------------------------------------------------------------------------


def resolve_entry(entry: Sequence[str], bundle_dir: Path, python: str) -> list[str]:
    """The entry with ``{bundle}`` and ``{python}`` replaced (one pass); the ``command``
    workload's own placeholders are left for it."""
    values = {"bundle": str(bundle_dir), "python": python}
    return [_ENTRY_PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in entry]


def missing_requirements(
    requirements: Sequence[str], installed: Callable[[str], str] = version
) -> list[str]:
    """The requirements the node's interpreter does not satisfy (empty: all present)."""
    missing = []
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if match is None:
            missing.append(requirement)
            continue
        name, wanted = match.groups()
        try:
            have = installed(name)
        except PackageNotFoundError:
            missing.append(requirement)
            continue
        if wanted is not None and have != wanted:
            missing.append(f"{requirement} (node has {have})")
    return missing
