"""The plugin installs and works in a fresh environment with only the kernel, `dense` and torch."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from theta.testing import GitRepo, fresh_environment, setup_git_home

from .torch_samples import saved, transformer_state

PLUGIN = Path(__file__).resolve().parents[1]
TORCH_PIN = "torch==2.13.0"  # a CPU build from local disk; never install torch unpinned here


@pytest.mark.slow
def test_fresh_venv_track_commit_checkout(tmp_path: Path) -> None:
    bin_dir = fresh_environment(tmp_path, [PLUGIN], [TORCH_PIN])
    env = setup_git_home(tmp_path / "home", bin_dir)
    plugins = subprocess.run(["git-theta", "plugins"], env=env, check=True, capture_output=True, text=True).stdout
    assert "theta-format-torch" in plugins and "pytorch" in plugins

    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], env=env, check=True)
    repo = GitRepo(work, env)
    repo.run("git-theta", "track", "*.pt")
    state = transformer_state()
    first = saved(state)
    repo.write("model.pt", first)
    first_commit = repo.commit_all("v1")
    state["linear1.bias"] = state["linear1.bias"] + 1
    repo.write("model.pt", saved(state))
    repo.commit_all("v2")
    repo.git("checkout", "-q", first_commit)
    assert repo.read("model.pt") == first
    assert repo.status() == ""
