"""Where a fresh environment takes its projects and versions from (the slow tests that build one
live in each plugin: `run_plugin_tests_in_fresh_environment`)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from theta.testing import distribution_source, run_plugin_tests_in_fresh_environment
from theta.testing.environments import (
    canonical,
    declared_requirements,
    project_dir,
    project_name,
    requirement_name,
    running_versions,
)
from theta.testing.standalone import INSIDE_A_COPY


@pytest.mark.parametrize(
    ("requirement", "name"),
    [
        ("theta-format-torch[torch]>=0.1,<0.2", "theta-format-torch"),
        ("Theta_Update.Dense", "theta-update-dense"),
        ("torch>=2.1,<3; extra == 'test'", "torch"),
        ("  numpy", "numpy"),
    ],
)
def test_requirement_names(requirement: str, name: str) -> None:
    assert requirement_name(requirement) == name


def test_the_kernel_comes_from_where_it_is_installed() -> None:
    source = distribution_source("theta-kernel")
    if isinstance(source, Path):
        assert project_name(source) == "theta-kernel"
        assert "pluggy" in declared_requirements(source)
    else:
        assert source == f"theta-kernel=={metadata.version('theta-kernel')}"


def test_other_packages_are_held_to_the_running_versions() -> None:
    pins = running_versions()
    assert f"pytest=={metadata.version('pytest')}" in pins
    assert all(line.count("==") == 1 for line in pins)
    local = {canonical(d.metadata["Name"]) for d in metadata.distributions() if project_dir(d) is not None}
    assert local and not [line for line in pins if line.split("==")[0] in local]


def test_a_copy_does_not_copy_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(INSIDE_A_COPY, "1")
    with pytest.raises(pytest.fail.Exception, match="leave this file out"):
        run_plugin_tests_in_fresh_environment(tmp_path, tmp_path, leave_out=tmp_path / "tests" / "test_x.py")
    assert not list(tmp_path.iterdir())
