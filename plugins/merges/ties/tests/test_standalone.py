"""This plugin on its own: its tests pass from a copy of its directory outside the repository, in a
fresh environment holding only the kernel, theta-update-dense, this plugin and its [test] extra."""

from __future__ import annotations

from pathlib import Path

import pytest

from theta.testing import run_plugin_tests_in_fresh_environment


@pytest.mark.slow
def test_passes_its_own_tests_alone(tmp_path: Path) -> None:
    run_plugin_tests_in_fresh_environment(Path(__file__).parents[1], tmp_path, leave_out=__file__)
