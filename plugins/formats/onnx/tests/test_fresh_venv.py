"""The plugin on its own, in one fresh virtual environment: first with only the kernel, this plugin
and their dependencies (no torch, no onnx), then with its [test] extra, running its own tests
from a copy of its directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from theta.testing import run_plugin_tests_in_fresh_environment, setup_git_home

from .onnx_models import cnn_bytes, if_model

PLUGIN = Path(__file__).resolve().parents[1]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_track_commit_checkout_in_a_fresh_venv_then_its_own_tests(tmp_path: Path) -> None:
    v1, v2 = cnn_bytes(), if_model()  # written by the main environment's torch and onnx

    def without_frameworks(bin_dir: Path) -> None:
        installed = run([str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze"], tmp_path, dict(os.environ))
        names = {line.split("==")[0].lower() for line in installed.splitlines()}
        assert "theta-format-onnx" in names and not names & {"torch", "onnx", "onnxruntime"}
        home = tmp_path / "home"
        env = setup_git_home(home, bin_dir)
        plugins = run(["git", "theta", "plugins"], home, env)
        assert "onnx" in plugins and "theta-format-onnx" in plugins and "error" not in plugins.lower()

        work = tmp_path / "work"
        run(["git", "init", "-q", "-b", "main", str(work)], tmp_path, env)
        run(["git", "theta", "track", "*.onnx"], work, env)
        (work / "model.onnx").write_bytes(v1)
        run(["git", "add", "-A"], work, env)
        run(["git", "commit", "-q", "-m", "v1"], work, env)
        (work / "model.onnx").write_bytes(v2)
        run(["git", "commit", "-q", "-am", "v2"], work, env)
        run(["git", "checkout", "-q", "HEAD~1"], work, env)
        assert (work / "model.onnx").read_bytes() == v1
        assert run(["git", "status", "--porcelain"], work, env) == ""
        run(["git", "checkout", "-q", "main"], work, env)
        assert (work / "model.onnx").read_bytes() == v2

    run_plugin_tests_in_fresh_environment(PLUGIN, tmp_path, leave_out=__file__, before_tests=without_frameworks)
