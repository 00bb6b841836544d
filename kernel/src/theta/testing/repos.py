"""Git work trees for tests: an isolated HOME with git, git-lfs and Theta installed, and a
`GitRepo` whose helpers run git and `git theta` there and fail loudly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Theta Test",
    "GIT_AUTHOR_EMAIL": "test@theta.invalid",
    "GIT_COMMITTER_NAME": "Theta Test",
    "GIT_COMMITTER_EMAIL": "test@theta.invalid",
}


def git_theta_command() -> str:
    """The `git-theta` script of the running interpreter's environment."""
    candidate = Path(sys.executable).parent / "git-theta"
    return str(candidate) if candidate.exists() else "git-theta"


class GitRepo:
    """A work tree with helpers that run git and `git theta` in it and fail loudly."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.env = env

    def run(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(args), cwd=self.path, env=self.env, input=input, capture_output=True)
        result = subprocess.CompletedProcess(
            proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"command failed ({proc.returncode}): {' '.join(args)}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            )
        return result

    def git(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("git", *args, check=check, input=input)

    def theta(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(git_theta_command(), *args, check=check)

    def write(self, relpath: str, data: bytes) -> Path:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target

    def read(self, relpath: str) -> bytes:
        return (self.path / relpath).read_bytes()

    def blob(self, rev_path: str) -> bytes:
        """The stored (cleaned) form of a file: `git cat-file blob REV:PATH`."""
        return subprocess.run(
            ["git", "cat-file", "blob", rev_path], cwd=self.path, env=self.env, capture_output=True, check=True
        ).stdout

    def commit_all(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").stdout.strip()

    def status(self) -> str:
        return self.git("status", "--porcelain").stdout

    @property
    def lfs_objects(self) -> Path:
        return Path(self.git("rev-parse", "--git-common-dir").stdout.strip()).resolve(strict=False) / "lfs" / "objects"

    def lfs_object_count(self) -> int:
        root = self.path / ".git" / "lfs" / "objects"
        return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def isolated_git_env(home: Path, bin_dir: Path | None = None) -> dict[str, str]:
    """Environment variables for a HOME of its own; `bin_dir` (default: this interpreter's) leads PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "THETA_"))}
    env.update(GIT_IDENTITY)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    ours = str(Path(sys.executable).parent)
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != ours]
    env["PATH"] = os.pathsep.join([str(bin_dir or ours), *rest])
    if bin_dir is not None:
        for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            env.pop(key, None)
    return env


def setup_git_home(home: Path, bin_dir: Path | None = None) -> dict[str, str]:
    """Make `home` a fresh HOME with git, git-lfs and Theta (from `bin_dir`, if given) configured globally."""
    if shutil.which("git-lfs") is None:
        pytest.fail("git-lfs is not installed; `make test` installs it (apt-get install git-lfs)")
    home.mkdir(parents=True, exist_ok=True)
    env = isolated_git_env(home, bin_dir)
    theta = str(bin_dir / "git-theta") if bin_dir else git_theta_command()
    for args in (
        ["git", "config", "--global", "init.defaultBranch", "main"],
        ["git", "config", "--global", "protocol.file.allow", "always"],
        ["git", "config", "--global", "advice.detachedHead", "false"],
        ["git", "lfs", "install", "--skip-repo"],
        [theta, "install"],
    ):
        subprocess.run(args, env=env, cwd=home, check=True, capture_output=True)
    return env


def clone(remote: Path, target: Path, env: dict[str, str], *args: str) -> GitRepo:
    subprocess.run(
        ["git", "clone", "-q", *args, remote.as_uri(), str(target)], env=env, check=True, capture_output=True
    )
    return GitRepo(target, env)
