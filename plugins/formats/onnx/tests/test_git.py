"""End to end with real git: the kernel's filter cleans and smudges ONNX files through this plugin."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from theta.tensors import Tensor
from theta.testing import GitRepo, read_checkpoint, write_checkpoint
from theta_format_onnx.format import OnnxFormat

from .onnx_models import cnn_bytes, transformer_bytes

FMT = OnnxFormat()


def changed(data: bytes, names: list[str], path: str = "model.onnx") -> bytes:
    skeleton, tensors = read_checkpoint(FMT, data, path)
    for name in names:
        tensors[name] = Tensor.from_numpy(tensors[name].numpy() * 2 + 1)
    return write_checkpoint(FMT, skeleton, tensors)


def test_commit_modify_checkout(repo: GitRepo) -> None:
    repo.theta("track", "*.onnx")
    v1 = cnn_bytes()
    v2 = changed(v1, ["fc.weight", "conv2.bias"])
    repo.write("models/cnn.onnx", v1)
    first = repo.commit_all("v1")
    assert repo.blob("HEAD:models/cnn.onnx") != v1  # git holds metadata, not the model
    repo.write("models/cnn.onnx", v2)
    repo.commit_all("v2")
    assert repo.status() == ""
    repo.git("checkout", "-q", first)
    assert repo.read("models/cnn.onnx") == v1
    assert repo.status() == ""
    repo.git("checkout", "-q", "main")
    assert repo.read("models/cnn.onnx") == v2
    assert repo.status() == ""


def test_external_data_commit_modify_checkout(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo.path)  # reading the data file here finds model.onnx as the filter does
    repo.theta("track", "*.onnx")
    repo.theta("track", "*.onnx.data", "--format", "onnx")
    model = onnx.load_from_string(transformer_bytes())
    onnx.save_model(model, str(repo.path / "model.onnx"), save_as_external_data=True, location="model.onnx.data",
                    size_threshold=1024)  # fmt: skip
    graph_v1, data_v1 = repo.read("model.onnx"), repo.read("model.onnx.data")
    first = repo.commit_all("v1")
    stored = repo.blob("HEAD:model.onnx.data")
    assert b"onnx::MatMul_326" in stored and len(stored) < len(data_v1)  # tensors went into objects
    data_v2 = changed(data_v1, ["onnx::MatMul_326"], "model.onnx.data")
    graph_v2 = changed(graph_v1, ["layers.0.norm1.bias"])
    repo.write("model.onnx.data", data_v2)
    repo.write("model.onnx", graph_v2)
    repo.commit_all("v2")
    repo.git("checkout", "-q", first)
    assert repo.read("model.onnx") == graph_v1 and repo.read("model.onnx.data") == data_v1
    assert repo.status() == ""
    repo.git("checkout", "-q", "main")
    assert repo.read("model.onnx") == graph_v2 and repo.read("model.onnx.data") == data_v2
    assert repo.status() == ""
    loaded = onnx.load(str(repo.path / "model.onnx"))
    weight = next(t for t in loaded.graph.initializer if t.name == "onnx::MatMul_326")
    _, expected = read_checkpoint(FMT, data_v2, "model.onnx.data")
    assert np.array_equal(onnx.numpy_helper.to_array(weight), expected["onnx::MatMul_326"].numpy())
