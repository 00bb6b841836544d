"""The plugin on its own, in one fresh environment: first without TensorFlow (files written
beforehand by TensorFlow are tracked, committed and checked out there, then restored by
TensorFlow in this process), then with its [test] extra, running its own tests from a copy of
its directory."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from theta.tensors import Tensor
from theta.testing import read_checkpoint, run_plugin_tests_in_fresh_environment, setup_git_home, write_checkpoint
from theta_format_tensorflow import KerasH5Format

PLUGIN = Path(__file__).resolve().parents[1]
SHARD = "ckpt-1.data-00000-of-00001"


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_track_and_check_out_in_a_venv_without_tensorflow_then_its_own_tests(tf_files: Any, tmp_path: Path) -> None:
    def checks(bin_dir: Path) -> None:
        without_tensorflow(tf_files, tmp_path, bin_dir)

    run_plugin_tests_in_fresh_environment(PLUGIN, tmp_path, leave_out=__file__, before_tests=checks)


def without_tensorflow(tf_files: Any, tmp_path: Path, bin_dir: Path) -> None:
    probe = "import importlib.util as u; print(u.find_spec('tensorflow') is None and u.find_spec('keras') is None)"
    assert run([str(bin_dir / "python"), "-c", probe], tmp_path, dict(os.environ)).strip() == "True"
    env = setup_git_home(tmp_path / "home", bin_dir)
    listing = run(["git-theta", "plugins"], tmp_path, env)
    assert "theta-format-tensorflow" in listing and "keras-h5, keras, tf-checkpoint" in listing

    work = tmp_path / "work"
    run(["git", "init", "-q", str(work)], tmp_path, env)
    shutil.copy(tf_files.path("cnn.weights.h5"), work / "cnn.weights.h5")
    shutil.copy(tf_files.path("cnn.keras"), work / "cnn.keras")
    shutil.copytree(tf_files.path("cnn"), work / "ckpt")
    run(["git-theta", "track", "*.weights.h5"], work, env)
    run(["git-theta", "track", "*.keras"], work, env)
    run(["git-theta", "track", "*.data-*", "--format", "tf-checkpoint"], work, env)
    run(["git", "add", "-A"], work, env)
    run(["git", "commit", "-q", "-m", "first"], work, env)
    first = {p: (work / p).read_bytes() for p in ("cnn.weights.h5", "cnn.keras", f"ckpt/{SHARD}", "ckpt/ckpt-1.index")}

    skeleton, tensors = read_checkpoint(KerasH5Format(), first["cnn.weights.h5"], "cnn.weights.h5")
    tensors["layers/dense/vars/1"] = Tensor.from_numpy(np.full(5, 4.0, np.float32))
    (work / "cnn.weights.h5").write_bytes(write_checkpoint(KerasH5Format(), skeleton, tensors))
    shutil.copy(tf_files.path("cnn_wide.keras"), work / "cnn.keras")
    for name in ("ckpt-1.index", SHARD):
        shutil.copy(tf_files.path(f"transformer/{name}"), work / "ckpt" / name)
    run(["git", "add", "-A"], work, env)
    run(["git", "commit", "-q", "-m", "second"], work, env)

    run(["git", "checkout", "-q", "HEAD~1"], work, env)
    assert run(["git", "status", "--porcelain"], work, env) == ""
    for path, data in first.items():
        assert (work / path).read_bytes() == data, path
    restored = tf_files.restore("cnn", work / "ckpt" / "ckpt-1")
    assert tf_files.bits(restored) == tf_files.bits(tf_files.checkpoints["cnn"])

    run(["git", "checkout", "-q", "main"], work, env)
    assert run(["git", "status", "--porcelain"], work, env) == ""
    assert (work / "cnn.keras").read_bytes() == tf_files.path("cnn_wide.keras").read_bytes()
    assert tf_files.load_weights("cnn", work / "cnn.weights.h5")[-1].tolist() == [4.0] * 5
