"""A node stages the library version the mission pinned, whatever the key holds now."""

from __future__ import annotations

from pathlib import Path

from node_agent.inputs import stage_inputs
from tests.fakes import MemoryObjectStore
from workflow.params import MissionParams
from workflow.request import SampleRef


def test_the_pinned_library_version_is_staged_after_an_overwrite(tmp_path: Path) -> None:
    objects = MemoryObjectStore()
    objects.put_bytes("src", "incoming/q.smi", b"C q1\n")
    objects.put_bytes("src", "lib.smi", b"CCO first\n")
    head = objects.head("src", "lib.smi")
    pinned = SampleRef("src", "lib.smi", etag=head.etag, version_id=head.version_id)
    objects.put_bytes("src", "lib.smi", b"CCN second, longer\n")  # overwritten mid-mission
    params = MissionParams.model_validate({"workload": "molsim", "library": "s3://src/lib.smi"})
    sample = SampleRef("src", "incoming/q.smi")
    cache = tmp_path / "cache"

    staged = stage_inputs(objects, sample, params, tmp_path / "a", cache, library=pinned)
    assert staged.inputs.reference is not None
    assert staged.inputs.reference.read_bytes() == b"CCO first\n"
    again = stage_inputs(objects, sample, params, tmp_path / "b", cache, library=pinned)
    assert (again.library_cached, again.inputs.reference) == (True, staged.inputs.reference)
    # A mission planned before pinning names only the URI: the current version is read.
    legacy = stage_inputs(objects, sample, params, tmp_path / "c", cache, library=None)
    assert legacy.inputs.reference is not None
    assert legacy.inputs.reference.read_bytes() == b"CCN second, longer\n"
