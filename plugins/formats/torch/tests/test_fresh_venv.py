"""The plugin on its own, in one fresh environment: first with only the kernel, `dense` and this
plugin (no torch), then with its [test] extra, running its own tests from a copy of its directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from theta.testing import GitRepo, run_plugin_tests_in_fresh_environment, setup_git_home

from .torch_samples import saved, transformer_state

PLUGIN = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fresh_venv_track_commit_checkout_then_its_own_tests(tmp_path: Path) -> None:
    state = transformer_state()
    first = saved(state)
    state["linear1.bias"] = state["linear1.bias"] + 1
    second = saved(state)

    def track_commit_checkout(bin_dir: Path) -> None:
        env = setup_git_home(tmp_path / "home", bin_dir)
        plugins = subprocess.run(["git-theta", "plugins"], env=env, check=True, capture_output=True, text=True).stdout
        assert "theta-format-torch" in plugins and "pytorch" in plugins

        work = tmp_path / "work"
        subprocess.run(["git", "init", "-q", "-b", "main", str(work)], env=env, check=True)
        repo = GitRepo(work, env)
        repo.run("git-theta", "track", "*.pt")
        repo.write("model.pt", first)
        first_commit = repo.commit_all("v1")
        repo.write("model.pt", second)
        repo.commit_all("v2")
        repo.git("checkout", "-q", first_commit)
        assert repo.read("model.pt") == first
        assert repo.status() == ""

    run_plugin_tests_in_fresh_environment(PLUGIN, tmp_path, leave_out=__file__, before_tests=track_commit_checkout)
