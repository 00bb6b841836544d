"""`DiffRendererContract`: the checks every diff renderer passes.

Subclass it in the renderer's tests and set `renderer_name`. The samples cover every status,
a reshaped and a re-typed parameter, a working-tree side (nothing stored yet), a file with
no change, and hostile names (a newline followed by text that looks like a diff line, a
terminal escape). A renderer that writes nothing fails: every test checks that output
happened, not only that it was right when it happened.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from theta.diffs import DiffRenderer, DiffSummary, FileDiff, ParameterDiff, RenderOutput
from theta.plugins import PluginManager

FORGED = "+ forged.weight  float32  [1]"
HOSTILE_NAMES = (f"evil\n{FORGED}", "escape\x1b[31mred", 'quote"and\\backslash')


def sample_diffs() -> list[FileDiff]:
    """File diffs a renderer must show: every status, layout changes, hostile names, nothing changed."""
    params = [
        ParameterDiff(
            name="embed.weight", status="unchanged", dtype="float32", shape=(100, 64), update="dense", stored_bytes=0
        ),
        ParameterDiff(
            name="head.weight", status="added", dtype="float32", shape=(10, 64), update="dense", stored_bytes=2560
        ),
        ParameterDiff(name="layers.3.norm.bias", status="removed", dtype="float32", shape=(64,)),
        ParameterDiff(
            name="layers.0.mlp.weight",
            status="changed",
            dtype="float16",
            shape=(64, 128),
            old_dtype="float16",
            old_shape=(128, 64),
            update="dense",
            stored_bytes=16384,
        ),
        ParameterDiff(
            name="layers.1.attn.weight",
            status="changed",
            dtype="float32",
            shape=(64, 64),
            l2=0.866,
            relative=0.0135,
            max_abs=0.5,
            changed_fraction=0.0007,
            cosine=0.9999,
            update="sparse",
            stored_bytes=15,
        ),
        ParameterDiff(
            name="layers.2.attn.weight",
            status="changed",
            dtype="bfloat16",
            shape=(64, 64),
            old_dtype="float32",
            l2=0.649,
            relative=0.01,
            max_abs=0.037,
            changed_fraction=1.0,
            cosine=1.0,
            update="dense",
            stored_bytes=8192,
        ),
        *(
            ParameterDiff(name=name, status="changed", dtype="float32", shape=(1,), l2=1.0, changed_fraction=1.0)
            for name in HOSTILE_NAMES
        ),
    ]
    stored = FileDiff(
        path="model.safetensors", old="HEAD~1", new="HEAD", parameters=params, summary=DiffSummary.of(params, 27151)
    )
    worktree_params = [
        ParameterDiff(
            name="w", status="changed", dtype="float32", shape=(4,), l2=2.0, relative=0.5, changed_fraction=0.25
        ),
        ParameterDiff(name="b", status="unchanged", dtype="float32", shape=(4,)),
    ]
    worktree = FileDiff(
        path="dir/other model.pt",
        old="index",
        new=None,
        parameters=worktree_params,
        summary=DiffSummary.of(worktree_params, None),
    )
    quiet = [ParameterDiff(name="x", status="unchanged", dtype="int64", shape=(), update="dense", stored_bytes=0)]
    unchanged = FileDiff(
        path="same.safetensors", old="HEAD", new="index", parameters=quiet, summary=DiffSummary.of(quiet, 0)
    )
    return [stored, worktree, unchanged]


class DiffRendererContract:
    """Set `renderer_name` (the registered name). Override `check_output(text, target)` to add
    renderer-specific checks of what one rendering of `sample_diffs()` produced."""

    renderer_name: ClassVar[str]

    @pytest.fixture
    def renderer(self, theta_plugins: PluginManager) -> DiffRenderer:
        return theta_plugins.registry.diff_renderer(self.renderer_name)

    def render(
        self, renderer: DiffRenderer, diffs: list[FileDiff], tmp_path: Path, color: bool = False
    ) -> tuple[str, bytes]:
        """Render `diffs` once (from an iterator, as the kernel hands them); returns (text written, file written)."""
        stream = io.StringIO()
        target = tmp_path / f"render-{self.renderer_name}.out"
        target.unlink(missing_ok=True)
        iterator: Iterator[FileDiff] = iter(diffs)
        renderer.render(
            iterator, RenderOutput(stream=stream, color=color, target=target if renderer.writes_file else None)
        )
        written = target.read_bytes() if target.exists() else b""
        return stream.getvalue(), written

    def check_output(self, text: str, target: bytes) -> None:
        """Renderer-specific checks; the default checks nothing more."""

    def test_registered_under_its_name(self, renderer: DiffRenderer) -> None:
        assert isinstance(renderer, DiffRenderer)
        assert renderer.name == self.renderer_name

    def test_renders_every_sample(self, renderer: DiffRenderer, tmp_path: Path) -> None:
        text, target = self.render(renderer, sample_diffs(), tmp_path)
        if renderer.writes_file:
            assert target, "a renderer that writes files wrote nothing"
        else:
            assert text.strip(), "the renderer wrote nothing"
            assert "layers.1.attn.weight" in text
        self.check_output(text, target)

    def test_output_is_deterministic(self, renderer: DiffRenderer, tmp_path: Path) -> None:
        first = self.render(renderer, sample_diffs(), tmp_path)
        second = self.render(renderer, sample_diffs(), tmp_path)
        assert first == second
        assert first[0] or first[1]

    def test_a_name_cannot_forge_a_line(self, renderer: DiffRenderer, tmp_path: Path) -> None:
        text, target = self.render(renderer, sample_diffs(), tmp_path)
        assert text or target
        for line in text.splitlines():
            assert not line.startswith(FORGED[:8]), f"a parameter name forged the line {line!r}"
        assert "\x1b" not in text, "a terminal escape reached plain output"

    def test_nothing_to_show_is_not_an_error(self, renderer: DiffRenderer, tmp_path: Path) -> None:
        self.render(renderer, [sample_diffs()[2]], tmp_path)
        self.render(renderer, [], tmp_path)

    def test_colour_only_when_asked(self, renderer: DiffRenderer, tmp_path: Path) -> None:
        plain, _ = self.render(renderer, sample_diffs()[:1], tmp_path, color=False)
        coloured, _ = self.render(renderer, sample_diffs()[:1], tmp_path, color=True)
        assert "\x1b" not in plain
        if coloured != plain:
            assert "\x1b[" in coloured
            assert "\x1b[31mred" not in coloured, "a name's own escape was written raw"
