"""Test helpers for the kernel and for plugins: fixtures and contract test classes.

Enable in a conftest.py with `pytest_plugins = ["theta.testing"]`. The fixtures give each
test an isolated HOME (its own global git config, git-lfs and Theta installed there), a bare
remote reached through a file:// URL, and a clone of it with `repo.git(...)` and
`repo.theta(...)` helpers. `FormatContract` is the suite every format plugin subclasses.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from theta.errors import FormatError, ThetaError
from theta.formats import SNIFF_BYTES, CheckpointFormat, Layout, Source, TensorInfo
from theta.plugins import PluginManager, default_manager
from theta.tensors import Tensor

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


WORKSPACE = Path(__file__).resolve().parents[3]
_SOURCE_LEFTOVERS = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache", "tests")


def fresh_environment(root: Path, sources: Sequence[Path], requirements: Sequence[str] = ()) -> Path:
    """A new virtual environment with only the kernel, `theta-update-dense`, `sources` and
    `requirements` installed; returns its bin directory.

    Project directories are copied first, so that building them leaves nothing in the work
    tree. The kernel and the dense update type are always installed: every chain starts dense.
    """
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    bin_dir = root / "venv" / "bin"
    projects = [WORKSPACE / "kernel", WORKSPACE / "plugins" / "updates" / "dense", *sources]
    copies = [shutil.copytree(p, root / "src" / p.name, ignore=_SOURCE_LEFTOVERS) for p in projects]
    proc = subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", *requirements, *map(str, copies)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise AssertionError(f"pip install in a fresh environment failed:\n{proc.stdout}\n{proc.stderr}")
    return bin_dir


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


def clone(remote: Path, target: Path, env: dict[str, str], *args: str) -> GitRepo:
    subprocess.run(
        ["git", "clone", "-q", *args, remote.as_uri(), str(target)], env=env, check=True, capture_output=True
    )
    return GitRepo(target, env)


@pytest.fixture
def theta_plugins() -> PluginManager:
    """A fresh plugin manager with every installed plugin loaded."""
    return default_manager()


# ---- format contract ---------------------------------------------------------------------


def read_checkpoint(fmt: CheckpointFormat, data: bytes, path: str = "model") -> tuple[bytes, dict[str, Tensor]]:
    """Read `data` with `fmt` the way the clean filter does: as a non-seekable stream."""
    stream = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    head = stream.peek(SNIFF_BYTES)[:SNIFF_BYTES]
    stream.read(len(head))
    source = Source(path, stream, head)
    try:
        checkpoint = fmt.read(source)
        tensors = {name: Tensor(dtype=t.dtype, shape=t.shape, data=bytes(t.data)) for name, t in checkpoint.parameters}
        return checkpoint.skeleton, tensors
    finally:
        source.close()


def write_checkpoint(fmt: CheckpointFormat, skeleton: bytes, tensors: dict[str, Tensor]) -> bytes:
    layout = Layout(
        skeleton=skeleton,
        parameters={n: TensorInfo(dtype=t.dtype, shape=t.shape) for n, t in tensors.items()},
        load=lambda name: tensors[name],
        hashes={n: t.sha256() for n, t in tensors.items()},
    )
    sink = io.BytesIO()
    fmt.write(layout, sink)
    return sink.getvalue()


class FormatContract:
    """The checks every format plugin passes. Subclass it in the plugin's tests and set:

    - `format_name`: the registered name;
    - `samples(tmp_path)`: yields (file name, bytes) of real checkpoints written by the framework;
    - `other_format_sample(tmp_path)`: bytes of a checkpoint of another format (optional).

    Override `assert_equivalent(original, rebuilt)` where a byte-identical rewrite is not
    possible (and say so in the plugin's README).
    """

    format_name: ClassVar[str]

    def samples(self, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
        raise NotImplementedError

    def other_format_sample(self, tmp_path: Path) -> bytes | None:
        return None

    def assert_equivalent(self, original: bytes, rebuilt: bytes) -> None:
        assert rebuilt == original

    @pytest.fixture
    def fmt(self, theta_plugins: PluginManager) -> CheckpointFormat:
        return theta_plugins.registry.format(self.format_name)

    def test_registered_with_extensions(self, fmt: CheckpointFormat) -> None:
        assert fmt.name == self.format_name
        assert all(ext.startswith(".") and ext == ext.lower() for ext in fmt.extensions)

    def test_sniffs_its_samples(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        for name, data in self.samples(tmp_path):
            assert fmt.sniff(data[:SNIFF_BYTES]), name

    def test_round_trip(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        for name, data in self.samples(tmp_path):
            skeleton, tensors = read_checkpoint(fmt, data, name)
            assert tensors, f"{name}: no parameters read"
            self.assert_equivalent(data, write_checkpoint(fmt, skeleton, tensors))

    def test_read_is_deterministic(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        for name, data in self.samples(tmp_path):
            first = read_checkpoint(fmt, data, name)
            second = read_checkpoint(fmt, data, name)
            assert first[0] == second[0]
            assert {k: v.sha256() for k, v in first[1].items()} == {k: v.sha256() for k, v in second[1].items()}

    def test_changed_tensor_is_written(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        name, data = next(iter(self.samples(tmp_path)))
        skeleton, tensors = read_checkpoint(fmt, data, name)
        first = next(iter(tensors))
        original = tensors[first]
        changed = bytearray(original.data)
        if changed:
            changed[0] ^= 0x01
        tensors[first] = Tensor(dtype=original.dtype, shape=original.shape, data=bytes(changed))
        rebuilt = write_checkpoint(fmt, skeleton, tensors)
        _, reread = read_checkpoint(fmt, rebuilt, name)
        assert bytes(reread[first].data) == bytes(changed)

    def test_truncated_file_is_a_clear_error(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        name, data = next(iter(self.samples(tmp_path)))
        with pytest.raises(ThetaError, match=name):
            read_checkpoint(fmt, data[: len(data) * 2 // 3], name)

    def test_wrong_magic_is_rejected(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        name, data = next(iter(self.samples(tmp_path)))
        garbage = b"\x00NOT-A-CHECKPOINT" + data[16:]
        assert not fmt.sniff(garbage[:SNIFF_BYTES])
        with pytest.raises(FormatError, match=name):
            read_checkpoint(fmt, garbage, name)

    def test_other_format_is_rejected(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        other = self.other_format_sample(tmp_path)
        if other is None:
            pytest.skip("no sample of another format given")
        assert not fmt.sniff(other[:SNIFF_BYTES])
        with pytest.raises(FormatError):
            read_checkpoint(fmt, other, "other" + (fmt.extensions[0] if fmt.extensions else ""))


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "http: needs a local Git LFS server (giftless)")
