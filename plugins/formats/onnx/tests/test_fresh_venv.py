"""The plugin on its own: a fresh virtual environment with only the kernel, this plugin and their dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from onnx_models import cnn_bytes, if_model

from theta.testing import GIT_IDENTITY

PLUGIN = Path(__file__).resolve().parents[1]
KERNEL = PLUGIN.parents[2] / "kernel"
# The kernel reads every stored tensor through the `dense` update type, which it does not install itself.
DENSE = PLUGIN.parents[1] / "updates" / "dense"
IGNORE = shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "tests")


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_track_commit_checkout_in_a_fresh_venv(tmp_path: Path) -> None:
    if shutil.which("git-lfs") is None:
        pytest.fail("git-lfs is not installed (apt-get install git-lfs)")
    v1, v2 = cnn_bytes(), if_model()  # written by the main environment's torch and onnx
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    sources = tmp_path / "src"
    shutil.copytree(KERNEL, sources / "kernel", ignore=IGNORE)
    shutil.copytree(PLUGIN, sources / "onnx", ignore=IGNORE)
    shutil.copytree(DENSE, sources / "dense", ignore=IGNORE)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "THETA_", "VIRTUAL_ENV", "PYTHON"))}
    run(
        [str(bin_dir / "pip"), "install", "-q", *(str(sources / d) for d in ("kernel", "dense", "onnx"))],
        tmp_path,
        base_env,
    )
    installed = run([str(bin_dir / "pip"), "list", "--format=freeze"], tmp_path, base_env)
    names = {line.split("==")[0].lower() for line in installed.splitlines()}
    assert "theta-format-onnx" in names and not names & {"torch", "onnx", "onnxruntime"}

    home = tmp_path / "home"
    home.mkdir()
    main_bin = str(Path(sys.executable).parent)
    path = [p for p in base_env.get("PATH", "").split(os.pathsep) if p and p != main_bin]
    env = {**base_env, **GIT_IDENTITY, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "GIT_CONFIG_NOSYSTEM": "1", "PATH": os.pathsep.join([str(bin_dir), *path])}  # fmt: skip
    for args in (
        ["git", "config", "--global", "init.defaultBranch", "main"],
        ["git", "config", "--global", "advice.detachedHead", "false"],
        ["git", "lfs", "install", "--skip-repo"],
        ["git", "theta", "install"],
    ):
        run(args, home, env)
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
