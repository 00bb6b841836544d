"""End to end with git: track, commit, change, commit, check out the first version again."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from theta.testing import GitRepo, clone

SHARD = "ckpt-1.data-00000-of-00001"


def test_track_commit_change_and_check_out(tf_files: Any, repo: GitRepo) -> None:
    shutil.copy(tf_files.path("cnn.weights.h5"), repo.path / "cnn.weights.h5")
    shutil.copy(tf_files.path("transformer_bf16.keras"), repo.path / "model.keras")
    shutil.copytree(tf_files.path("cnn"), repo.path / "ckpt")
    repo.theta("track", "*.weights.h5")
    repo.theta("track", "*.keras")
    repo.theta("track", "*.data-*", "--format", "tf-checkpoint")
    first = repo.commit_all("first version")
    originals = {p: repo.read(p) for p in ("cnn.weights.h5", "model.keras", f"ckpt/{SHARD}", "ckpt/ckpt-1.index")}
    assert b'"format": "tf-checkpoint"' in repo.blob(f"HEAD:ckpt/{SHARD}")
    assert b'"format": "keras-h5"' in repo.blob("HEAD:cnn.weights.h5")
    assert b'"format": "keras"' in repo.blob("HEAD:model.keras")

    model = tf_files.model("cnn")
    model.load_weights(str(repo.path / "cnn.weights.h5"))
    model.layers[-1].bias.assign(np.full(5, 2.5, np.float32))
    model.save_weights(str(repo.path / "cnn.weights.h5"))
    archive = tf_files.load_model_object(repo.path / "model.keras")
    archive.layers[-1].bias.assign(np.full(4, 0.5, archive.layers[-1].bias.dtype))
    archive.save(str(repo.path / "model.keras"))

    def change(objects: dict[str, Any]) -> None:
        objects["step"].assign(99)
        objects["model"].layers[0].kernel.assign(np.zeros((3, 3, 3, 4), np.float32))

    second_values = tf_files.rewrite_checkpoint("cnn", repo.path / "ckpt" / "ckpt-1", change)
    assert repo.read(f"ckpt/{SHARD}") != originals[f"ckpt/{SHARD}"]
    repo.commit_all("second version")
    assert repo.status() == ""

    repo.git("checkout", "-q", first)
    assert repo.status() == ""
    for path, data in originals.items():
        assert repo.read(path) == data, path
    restored = tf_files.restore("cnn", repo.path / "ckpt" / "ckpt-1")
    assert tf_files.bits(restored) == tf_files.bits(tf_files.checkpoints["cnn"])
    assert tf_files.bits(tf_files.load_weights("cnn", repo.path / "cnn.weights.h5")) == tf_files.bits(
        tf_files.weights["cnn"]
    )
    assert tf_files.bits(tf_files.load_model(repo.path / "model.keras")) == tf_files.bits(
        tf_files.weights["transformer_bf16"]
    )

    repo.git("checkout", "-q", "main")
    assert repo.status() == ""
    assert tf_files.bits(tf_files.restore("cnn", repo.path / "ckpt" / "ckpt-1")) == tf_files.bits(second_values)
    assert tf_files.load_weights("cnn", repo.path / "cnn.weights.h5")[-1].tolist() == [2.5] * 5


def test_checkout_in_a_fresh_clone(tf_files: Any, repo: GitRepo, remote: Path, tmp_path: Path) -> None:
    shutil.copytree(tf_files.path("sharded"), repo.path / "sharded")
    repo.theta("track", "*.data-*", "--format", "tf-checkpoint")
    repo.commit_all("sharded checkpoint")
    repo.git("push", "-q", "origin", "main")
    copy = clone(remote, tmp_path / "copy", repo.env)
    for shard in sorted((repo.path / "sharded").iterdir()):
        assert (copy.path / "sharded" / shard.name).read_bytes() == shard.read_bytes(), shard.name
    restored = tf_files.restore("sharded", copy.path / "sharded" / "ckpt-1")
    assert tf_files.bits(restored) == tf_files.bits(tf_files.checkpoints["sharded"])
    assert copy.status() == ""
