"""The pytest fixtures of `theta.testing`: an isolated git HOME, a bare remote, a work tree, a plugin manager."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from theta.plugins import PluginManager, default_manager
from theta.testing.repos import GitRepo, setup_git_home


@pytest.fixture
def git_env(tmp_path: Path) -> dict[str, str]:
    """Environment for subprocesses: an isolated HOME with git-lfs and Theta installed."""
    return setup_git_home(tmp_path / "home")


@pytest.fixture
def remote(tmp_path: Path, git_env: dict[str, str]) -> Path:
    """A bare repository, the remote `origin` of `repo`."""
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], env=git_env, check=True)
    return path


@pytest.fixture
def repo(tmp_path: Path, git_env: dict[str, str], remote: Path) -> GitRepo:
    """An empty work tree whose `origin` is `remote` (a file:// URL)."""
    path = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], env=git_env, check=True)
    work = GitRepo(path, git_env)
    work.git("remote", "add", "origin", remote.as_uri())
    return work


@pytest.fixture
def theta_plugins() -> PluginManager:
    """A fresh plugin manager with every installed plugin loaded."""
    return default_manager()
