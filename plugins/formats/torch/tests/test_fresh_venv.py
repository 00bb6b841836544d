"""The plugin installs and works in a fresh environment with only the kernel, `dense` and torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from torch_samples import saved, transformer_state

from theta.testing import GitRepo, isolated_git_env

PLUGIN = Path(__file__).resolve().parents[1]
KERNEL = PLUGIN.parents[2] / "kernel"
DENSE = PLUGIN.parents[2] / "plugins" / "updates" / "dense"  # the update type every checkout needs
IGNORED = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests")
TORCH_PIN = "torch==2.13.0"  # a CPU build from local disk; never install torch unpinned here


def fresh_env(home: Path, bin_dir: Path) -> dict[str, str]:
    """An isolated HOME whose PATH reaches git-theta only through the fresh environment."""
    env = isolated_git_env(home)
    ours = str(Path(sys.executable).parent)
    rest = [p for p in env["PATH"].split(os.pathsep) if p and p != ours]
    env["PATH"] = os.pathsep.join([str(bin_dir), *rest])
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    home.mkdir(parents=True, exist_ok=True)
    for args in (
        ["git", "config", "--global", "init.defaultBranch", "main"],
        ["git", "config", "--global", "advice.detachedHead", "false"],
        ["git", "lfs", "install", "--skip-repo"],
        ["git-theta", "install"],
    ):
        subprocess.run(args, env=env, cwd=home, check=True, capture_output=True)
    return env


@pytest.mark.slow
def test_fresh_venv_track_commit_checkout(tmp_path: Path) -> None:
    if shutil.which("git-lfs") is None:
        pytest.fail("git-lfs is not installed (apt-get install git-lfs)")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    # Copies, so that building the wheels leaves no build/ directory in the work tree.
    sources = [shutil.copytree(src, tmp_path / "src" / src.name, ignore=IGNORED) for src in (KERNEL, DENSE, PLUGIN)]
    subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", TORCH_PIN, *map(str, sources)],
        check=True,
        capture_output=True,
    )
    env = fresh_env(tmp_path / "home", bin_dir)
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
