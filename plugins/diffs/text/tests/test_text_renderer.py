from __future__ import annotations

import re

from theta.diffs import DiffSummary, FileDiff, ParameterDiff
from theta.testing.diff_contract import FORGED, DiffRendererContract, sample_diffs
from theta_diff_text import render_file


class TestTextContract(DiffRendererContract):
    renderer_name = "text"

    def check_output(self, text: str, target: bytes) -> None:
        assert "diff --theta a/model.safetensors b/model.safetensors" in text
        assert "same.safetensors" not in text  # nothing changed there: nothing is printed


def lines_of(diff: FileDiff, color: bool = False) -> list[str]:
    return render_file(diff, color).splitlines()


def test_changed_parameter_shows_old_layout_then_new_with_figures() -> None:
    lines = lines_of(sample_diffs()[0])
    old = next(line for line in lines if line.startswith("- layers.1.attn.weight"))
    new = next(line for line in lines if line.startswith("+ layers.1.attn.weight"))
    assert "sparse" in new and "15 B" in new
    assert "l2 8.660e-01" in new and "relative 1.350e-02" in new and "changed   0.07%" in new
    assert "l2" not in old


def test_columns_line_up() -> None:
    lines = [line for line in lines_of(sample_diffs()[0]) if line.startswith(("+", "-")) and line[2] != '"']
    starts = {re.search(r"\s(b?float)", line).start(1) for line in lines}  # type: ignore[union-attr]
    assert len(starts) == 1


def test_unchanged_parameters_are_counted_not_listed() -> None:
    lines = lines_of(sample_diffs()[0])
    assert not any("embed.weight" in line for line in lines)
    assert lines[-1].strip().startswith("6 changed (1 reshaped), 1 added, 1 removed, 1 unchanged")


def test_hostile_names_are_escaped() -> None:
    text = render_file(sample_diffs()[0], color=False)
    assert '"evil\\n' + FORGED + '"' in text
    assert '"escape\\x1b[31mred"' in text
    assert '"quote\\"and\\\\backslash"' in text


def test_working_tree_side_is_not_stored_yet() -> None:
    lines = lines_of(sample_diffs()[1])
    assert lines[0] == 'diff --theta "a/dir/other model.pt" "b/dir/other model.pt"' or lines[0].startswith(
        "diff --theta"
    )
    assert lines[-1].endswith("not stored yet")


def test_colour_codes_wrap_whole_lines() -> None:
    lines = lines_of(sample_diffs()[0], color=True)
    assert lines[0].startswith("\x1b[1mdiff --theta")
    assert all(line.endswith("\x1b[m") for line in lines)
    assert any(line.startswith("\x1b[31m- ") for line in lines) and any(line.startswith("\x1b[32m+ ") for line in lines)


def test_file_without_change_prints_nothing() -> None:
    params = [ParameterDiff(name="a", status="unchanged", dtype="int8", shape=(2,))]
    assert (
        render_file(FileDiff(path="m", old="A", new="B", parameters=params, summary=DiffSummary.of(params, 0)), False)
        == ""
    )
