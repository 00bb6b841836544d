from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from theta.diffs import RenderOutput
from theta.errors import ThetaError
from theta.testing.diff_contract import DiffRendererContract, sample_diffs
from theta_diff_plot import PlotRenderer, build_figure, plotted


class TestPlotContract(DiffRendererContract):
    renderer_name = "plot"

    def check_output(self, text: str, target: bytes) -> None:
        image = Image.open(io.BytesIO(target))
        assert image.format == "PNG"
        assert image.size[0] >= 800 and image.size[1] >= 400


def test_bars_are_the_relative_changes_in_checkpoint_order() -> None:
    diff = sample_diffs()[0]
    figure = build_figure([diff])
    bars = figure.axes[0].containers[0]
    expected = [p.relative if p.status == "changed" and p.relative is not None else 0.0 for p in diff.parameters]
    assert [bar.get_height() for bar in bars] == pytest.approx(expected)
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels[:3] == ["embed.weight", "head.weight", "layers.3.norm.bias"]


def test_png_carries_its_data(tmp_path: Path) -> None:
    target = tmp_path / "diff.png"
    PlotRenderer().render(iter(sample_diffs()[:2]), RenderOutput(stream=io.StringIO(), target=target))
    image = Image.open(target)
    data = json.loads(image.text["theta-diff"])
    assert data[0][0] == "model.safetensors"
    assert data[0][1] == [[name, value] for name, value, _ in plotted(sample_diffs()[0])]
    assert image.size[1] >= 2 * 400  # a panel per file


def test_needs_a_file() -> None:
    with pytest.raises(ThetaError, match="PNG"):
        PlotRenderer().render(sample_diffs(), RenderOutput(stream=io.StringIO()))
