"""``cli.timeline.draw``: a real PNG or SVG, whose SVG text names every row and the cost; a
wrong suffix or a missing matplotlib is one named error, also through ``lighthpc show``."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from cli.timeline import PlotUnavailable, TimelineFormat, TimelineUnwritable, draw
from tests.fakes import mission_record
from workflow.records import ShardRecord, UnitRecord, billing_key
from workflow.states import MissionStatus, ShardStatus, UnitStatus
from workflow.timeline import MarkKind, Timeline, build_timeline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000.0


def _timeline() -> Timeline:
    unit = UnitRecord(
        "m", "u0000", 0, 1, UnitStatus.SUCCEEDED, 2, capacity="spot", interrupted_attempts=(1,)
    )
    shards = [
        ShardRecord("m", "s000000", "u0000", 0, 0, 5, ShardStatus.DONE, 1, instance_id="i-a",
                    claimed_at=T0 + 1, started_at=T0 + 2, finished_at=T0 + 9),
        ShardRecord("m", "s000001", "u0000", 1, 5, 9, ShardStatus.FAILED, 2, instance_id="i-b",
                    claimed_at=T0 + 12, finished_at=T0 + 15, interrupted_at=T0 + 10),
    ]  # fmt: skip
    billed = {billing_key("c7i.large", "spot", "i-a"): 11.0}
    mission = mission_record(
        "m", status=MissionStatus.PARTIAL, created_at=T0, cost=0.0123, instance_seconds=billed
    )
    return build_timeline(mission, [unit], shards, now=T0 + 20)


def test_png_is_written(tmp_path: Path) -> None:
    target = draw(_timeline(), tmp_path / "deep" / "t.PNG")
    assert target.read_bytes().startswith(PNG_MAGIC)


def test_svg_names_every_row_and_the_cost(tmp_path: Path) -> None:
    model = _timeline()
    assert [m.kind for _, m in model.marks(MarkKind.FAILED_SHARD)] == [MarkKind.FAILED_SHARD]
    target = draw(model, tmp_path / "t.svg")
    root = ET.parse(target).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = " ".join(t for t in root.itertext())
    for row in model.rows:
        assert row.label() in text
    assert "cost $0.0123" in text
    for kind in MarkKind:
        if model.marks(kind):
            assert kind.value in text  # the legend names each kind of mark drawn


def test_an_unknown_suffix_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(TimelineFormat, match=r"\.png or an \.svg"):
        draw(_timeline(), tmp_path / "t.gif")
    assert not (tmp_path / "t.gif").exists()


def test_a_path_under_a_file_is_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(TimelineUnwritable, match="cannot write"):
        draw(_timeline(), tmp_path / "plain" / "t.svg")


def test_without_matplotlib_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    with pytest.raises(PlotUnavailable, match=r"lighthpc-sfn\[plot\]"):
        draw(_timeline(), tmp_path / "t.png")


@pytest.mark.parametrize(
    ("target", "error"),
    [("t.gif", "Timeline.UnsupportedFormat"), ("t.png", "Timeline.PlotUnavailable")],
)
def test_show_refuses_before_reading_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, error: str
) -> None:
    """No stack is reachable here: the refusal comes first, exit 2, one line, no picture."""
    if error == "Timeline.PlotUnavailable":
        monkeypatch.setitem(sys.modules, "matplotlib", None)
    path = tmp_path / target
    result = CliRunner().invoke(
        main, ["show", "m-0123", "--timeline", str(path), "--endpoint-url", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lighthpc: {error}: "), result.stderr
    assert not path.exists()
