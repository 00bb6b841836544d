"""Shared pieces of the benchmarks: isolated git environments, timing, store sizes, tables."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel" / "src"))

from theta.testing import setup_git_home

PEAK = re.compile(r"filter-process peak RSS (\d+) MiB")


class Workspace:
    """A HOME with git, git-lfs and Theta configured, a bare remote and a work tree."""

    def __init__(self, root: Path, tool: str) -> None:
        self.root = root
        self.tool = tool
        self.env = setup_git_home(root / "home")
        self.env["THETA_TRACE"] = "1"
        self.peaks: list[int] = []
        self.remote = root / "remote.git"
        self.work = root / "work"
        self.git("init", "-q", "--bare", "-b", "main", str(self.remote), cwd=root)
        self.git("init", "-q", "-b", "main", str(self.work), cwd=root)
        self.git("remote", "add", "origin", self.remote.as_uri())
        if tool == "lfs":
            self.git("lfs", "track", "*.safetensors")
        else:
            self.run("git-theta", "track", "*.safetensors")
        self.git("add", ".gitattributes")
        self.git("commit", "-q", "-m", "track")

    def run(self, *args: str, cwd: Path | None = None) -> float:
        """Run a command; returns wall seconds. Records the filter's peak memory when it reports one."""
        start = time.perf_counter()
        proc = subprocess.run(list(args), cwd=cwd or self.work, env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr}")
        self.peaks += [int(m) for m in PEAK.findall(proc.stderr)]
        return elapsed

    def git(self, *args: str, cwd: Path | None = None) -> float:
        return self.run("git", *args, cwd=cwd)

    def settle(self, cwd: Path | None = None) -> None:
        """Make the index trust its files' timestamps again, untimed, before a timed command.

        git compares a file's mtime with the index's in whole seconds: a file written in the
        second its index was written (by a checkout, a clone) is "racily clean", and the next
        command runs the clean filter over it to compare contents: for 950 MiB, 1.0-1.1 s with
        Theta and 4.6-5.2 s with Git LFS, which hashes and copies the file. Whether it hits a
        timed checkout depends on where a second boundary fell, which made single checkout
        timings vary by up to 4x. Once a second has passed, a refresh compares each racy file
        once and rewrites the index, so the next command trusts it.
        """
        index = Path(cwd or self.work) / ".git" / "index"
        wait = math.floor(index.stat().st_mtime) + 1.05 - time.time()
        if wait > 0:
            time.sleep(wait)
        self.git("update-index", "-q", "--refresh", cwd=cwd)

    def lfs_bytes(self, git_dir: Path | None = None) -> int:
        root = (git_dir or self.work / ".git") / "lfs" / "objects"
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0

    def clone(self, name: str) -> float:
        target = self.root / name
        return self.git("clone", "-q", self.remote.as_uri(), str(target), cwd=self.root)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def drop_page_cache_hint() -> None:
    """Flush dirty pages so one tool's writes do not slow the next one's timing."""
    os.sync()


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(report: str, out: Path) -> None:
    """Write a benchmark's markdown report to `out` and show it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"
