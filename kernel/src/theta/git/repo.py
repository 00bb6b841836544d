"""Plumbing: run git, read config, look blobs and attributes up through long-running processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

from theta.errors import ThetaError

THETA_ATTRIBUTE_FILTER = "theta"
THETA_DIR = "theta"  # Theta's own state, in git's common directory
SQUASH_REQUESTS = "squash"


def run_git(*args: str, cwd: Path | None = None, input: bytes | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True)
    if check and proc.returncode != 0:
        raise ThetaError(f"`git {' '.join(args)}` failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode(errors="surrogateescape")


class Repo:
    """The repository of the current directory (or `cwd`)."""

    def __init__(self, cwd: Path | None = None) -> None:
        self.cwd = cwd
        self._cat_file: subprocess.Popen[bytes] | None = None
        self._check_attr: subprocess.Popen[bytes] | None = None

    def git(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        return run_git(*args, cwd=self.cwd, input=input, check=check)

    @cached_property
    def git_dir(self) -> Path:
        return Path(self.git("rev-parse", "--absolute-git-dir").strip())

    @cached_property
    def common_dir(self) -> Path:
        common = Path(self.git("rev-parse", "--git-common-dir").strip())
        return common if common.is_absolute() else (Path(self.cwd or os.getcwd()) / common).resolve()

    @cached_property
    def lfs_dir(self) -> Path:
        configured = self.config("lfs.storage")
        if configured:
            path = Path(configured)
            return path if path.is_absolute() else self.common_dir / path
        return self.common_dir / "lfs"

    @cached_property
    def theta_dir(self) -> Path:
        return self.common_dir / THETA_DIR

    @cached_property
    def squash_requests(self) -> Path:
        """The paths whose next commit stores every tensor whole (`git theta add --squash`)."""
        return self.theta_dir / SQUASH_REQUESTS

    @cached_property
    def keep_dir(self) -> Path:
        """Second names (hard links) of Theta's objects, out of `git lfs prune`'s reach."""
        return self.theta_dir / "objects"

    @cached_property
    def hooks_dir(self) -> Path:
        hooks = Path(self.git("rev-parse", "--git-path", "hooks").strip())
        return hooks if hooks.is_absolute() else (Path(self.cwd or os.getcwd()) / hooks).resolve()

    @cached_property
    def top_level(self) -> Path:
        return Path(self.git("rev-parse", "--show-toplevel").strip())

    def config(self, key: str, default: str | None = None) -> str | None:
        value = self.git("config", "--get", key, check=False).strip()
        return value or default

    def config_int(self, key: str, default: int) -> int:
        value = self.config(key)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ThetaError(f"git config {key} must be a whole number, got {value!r}") from None

    # -- long-running helpers ------------------------------------------------------------

    def read_blob(self, spec: str) -> bytes | None:
        """The content of `spec` (`:path`, `HEAD:path`, a blob id), or None when it does not exist."""
        if self._cat_file is None:
            self._cat_file = subprocess.Popen(
                ["git", "cat-file", "--batch"], cwd=self.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        assert self._cat_file.stdin and self._cat_file.stdout
        self._cat_file.stdin.write(spec.encode() + b"\n")
        self._cat_file.stdin.flush()
        header = self._cat_file.stdout.readline().decode().split()
        if len(header) != 3 or header[1] != "blob":
            if len(header) == 3:  # an object that is not a blob: skip its content
                self._cat_file.stdout.read(int(header[2]) + 1)
            return None
        data = self._cat_file.stdout.read(int(header[2]))
        self._cat_file.stdout.read(1)
        return data

    def attribute(self, path: str, name: str) -> str | None:
        """The value of attribute `name` for `path`, None when unspecified."""
        if self._check_attr is None:
            self._check_attr = subprocess.Popen(
                ["git", "check-attr", "--stdin", "-z", "filter", "theta-format"],
                cwd=self.cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        assert self._check_attr.stdin and self._check_attr.stdout
        self._check_attr.stdin.write(path.encode() + b"\0")
        self._check_attr.stdin.flush()
        values = {}
        for _ in range(2):  # one answer per attribute asked: path NUL attr NUL value NUL
            fields = [self._read_z(self._check_attr.stdout) for _ in range(3)]
            values[fields[1]] = fields[2]
        value = values.get(name)
        return None if value in (None, "unspecified", "unset") else value

    @staticmethod
    def _read_z(stream: object) -> str:
        out = bytearray()
        while (ch := stream.read(1)) not in (b"\0", b""):  # type: ignore[attr-defined]
            out += ch
        return out.decode(errors="surrogateescape")

    def tracked_paths(self, paths: Iterable[str]) -> list[str]:
        """Those of `paths` whose filter attribute is theta."""
        return [p for p in paths if self.attribute(p, "filter") == THETA_ATTRIBUTE_FILTER]

    def close(self) -> None:
        for proc in (self._cat_file, self._check_attr):
            if proc is not None and proc.stdin:
                proc.stdin.close()
                proc.wait()
        self._cat_file = self._check_attr = None
