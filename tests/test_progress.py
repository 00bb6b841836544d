"""Progress as git-lfs shows it: a line per phase redrawn on a terminal, one summary when piped, none when quiet."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
from pathlib import Path

import numpy as np
import pytest
from sample_models import checkpoint_bytes, make_model

from theta.progress import Progress
from theta.testing import GitRepo

MODEL = "model.safetensors"


def big_model() -> bytes:
    rng = np.random.default_rng(0)
    return checkpoint_bytes(
        {f"layer.{i}.weight": rng.standard_normal((256, 1024)).astype(np.float32) for i in range(8)}
    )


def on_terminal(repo: GitRepo, *args: str, env: dict[str, str]) -> str:
    """Run a command with stderr on a pseudo-terminal; returns what the terminal received."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # 40 rows, 200 columns
    proc = subprocess.Popen(
        list(args), cwd=repo.path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal
    )
    os.close(terminal)
    received = bytearray()
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(controller, 1 << 16)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(controller)
    assert proc.wait(timeout=60) == 0, received.decode(errors="replace")
    return received.decode(errors="replace")


@pytest.fixture
def tracked(repo: GitRepo) -> GitRepo:
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, big_model())
    return repo


def test_on_a_terminal_each_phase_is_one_line_redrawn_with_bytes_rate_and_eta(tracked: GitRepo) -> None:
    env = {**tracked.env, "GIT_PROGRESS_DELAY": "0"}
    shown = on_terminal(tracked, "git", "add", MODEL, env=env)
    adding = [part for part in re.split(r"[\r\n]+", shown) if part.startswith(f"theta: adding {MODEL}:")]
    assert adding, shown
    assert re.search(r"\d+% \(\d+(\.\d)? [KM]iB/8\.0 MiB\), [\d.]+ [KMG]?i?B/s, ETA \d\d:\d\d", shown), shown
    assert "\r" in shown, "the line is redrawn in place"
    assert re.search(rf"theta: adding {MODEL}: 100% \(8\.0 MiB/8\.0 MiB\), [\d.]+ [KMG]?i?B/s, done\.", shown), shown
    assert shown.count("done.") == 1, shown
    tracked.git("commit", "-q", "-m", "v1")
    (tracked.path / MODEL).unlink()
    written = on_terminal(tracked, "git", "checkout", "--", MODEL, env=env)
    assert re.search(rf"theta: writing {MODEL}: 100% \(8\.0 MiB/8\.0 MiB\), [\d.]+ [KMG]?i?B/s, done\.", written), (
        written
    )


def test_piped_there_is_only_a_final_summary(tracked: GitRepo) -> None:
    env = {**tracked.env, "GIT_PROGRESS_DELAY": "0"}
    proc = subprocess.run(["git", "add", MODEL], cwd=tracked.path, env=env, capture_output=True, text=True, check=True)
    assert "\r" not in proc.stderr and "ETA" not in proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("theta:")]
    assert re.fullmatch(
        rf"theta: adding {MODEL}: 100% \(8\.0 MiB/8\.0 MiB\) in [\d.]+ s, [\d.]+ [KMG]?i?B/s, done\.", line
    )


def test_short_work_piped_prints_nothing(tracked: GitRepo) -> None:
    tracked.write(MODEL, checkpoint_bytes(make_model()))
    proc = subprocess.run(["git", "add", MODEL], cwd=tracked.path, env=tracked.env, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""


@pytest.mark.parametrize("how", ["environment", "option"])
def test_quiet_shows_nothing_even_on_a_terminal(tracked: GitRepo, how: str) -> None:
    env = {**tracked.env, "GIT_PROGRESS_DELAY": "0"}
    if how == "environment":
        shown = on_terminal(tracked, "git", "add", MODEL, env={**env, "GIT_THETA_QUIET": "1"})
    else:
        shown = on_terminal(tracked, "git", "theta", "add", "--quiet", MODEL, env=env)
    assert "theta:" not in shown, shown


def test_unknown_total_shows_bytes_and_rate(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_PROGRESS_DELAY", "0")
    monkeypatch.delenv("GIT_THETA_QUIET", raising=False)
    with Progress("adding stdin", 0, "B") as progress:
        progress.advance(3 << 20)
    err = capsys.readouterr().err
    assert re.fullmatch(r"theta: adding stdin: 3\.0 MiB in [\d.]+ s, [\d.]+ [KMGT]?i?B/s, done\.\n", err), err


def test_reader_counts_what_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_THETA_QUIET", "1")
    file = tmp_path / "data"
    file.write_bytes(b"x" * 100_000)
    with open(file, "rb", buffering=0) as raw, Progress("reading", 100_000, "B") as progress:
        assert len(progress.reader(raw).read()) == 100_000
        assert progress.done == 100_000


def test_storing_on_the_remote_shows_git_lfs_upload_progress_on_a_terminal(tracked: GitRepo) -> None:
    tracked.git("add", MODEL)
    tracked.git("commit", "-q", "-m", "v1")
    shown = on_terminal(tracked, "git", "push", "-q", "origin", "main", env=tracked.env)
    assert re.search(r"Uploading LFS objects: 100% \(9/9\)", shown), shown
    piped = subprocess.run(["git", "push", "origin", "main"], cwd=tracked.path, env=tracked.env, capture_output=True)
    assert b"Uploading LFS objects" not in piped.stderr
