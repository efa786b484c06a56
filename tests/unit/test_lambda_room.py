"""PlanMission's room: inputs refused from their sizes, naming the limit that refused them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow.errors import MissionInvalidInput
from workflow.lambda_room import DEFAULT_TMP_MB, ENV_LAMBDA_TMP_MB, LambdaRoom

MIB = 1024 * 1024


@given(
    memory=st.integers(128, 10_240),
    tmp=st.integers(512, 10_240),
    sample=st.integers(1, 12_000 * MIB),
    library=st.integers(0, 12_000 * MIB),
)
def test_inputs_are_refused_exactly_when_they_cannot_fit(
    memory: int, tmp: int, sample: int, library: int
) -> None:
    room = LambdaRoom(memory_mb=memory, tmp_mb=tmp)
    sizes = {"sample s3://b/k": sample, "library s3://b/l": library}
    fits = sample + library <= min(room.input_bytes_on_disk, room.input_bytes_in_memory)
    if fits:
        room.check_inputs(sizes)
        return
    with pytest.raises(MissionInvalidInput) as caught:
        room.check_inputs(sizes)
    text = str(caught.value)
    assert f"sample s3://b/k {sample} bytes" in text
    on_disk = sample + library > room.input_bytes_on_disk
    assert (f"ephemeral storage is {tmp} MB" in text) == on_disk
    assert (f"{memory} MB hold at most" in text) == (not on_disk)


def test_tmp_comes_from_the_environment_else_the_aws_default() -> None:
    assert LambdaRoom.of(1024, {ENV_LAMBDA_TMP_MB: "2048"}).tmp_mb == 2048
    assert LambdaRoom.of(1024, {}).tmp_mb == DEFAULT_TMP_MB
    assert LambdaRoom.of(1024, {ENV_LAMBDA_TMP_MB: "lots"}).tmp_mb == DEFAULT_TMP_MB
