"""Merges of torch.save files and ONNX models: per parameter, with their non-tensor state."""

from __future__ import annotations

import io

import ml_dtypes
import numpy as np
import onnx
import torch
from merge_support import as_bf16, average, commit, merge, stored, ties, unmerged, write_policy
from onnx import TensorProto, helper, numpy_helper

from theta.testing import GitRepo

PT = "model.pt"
ONNX = "model.onnx"


def state(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "encoder.weight": rng.standard_normal((16, 12)).astype(np.float32),
        "decoder.weight": rng.standard_normal((12, 16)).astype(np.float32),
        "decoder.bias": rng.normal(0, 0.1, 12).astype(np.float32),
    }


def torch_bytes(weights: dict[str, np.ndarray], epoch: int = 1, bf16: np.ndarray | None = None) -> bytes:
    model = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    if bf16 is not None:
        model["adapter.weight"] = torch.from_numpy(bf16.copy()).to(torch.bfloat16)
    buffer = io.BytesIO()
    torch.save({"model": model, "epoch": epoch, "config": {"lr": 0.1}}, buffer)
    return buffer.getvalue()


def torch_load(data: bytes) -> dict:  # type: ignore[type-arg]
    return torch.load(io.BytesIO(data), weights_only=True)


def changed(weights: dict[str, np.ndarray], names: list[str], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (v + rng.normal(0, 0.05, v.shape).astype(np.float32)) if k in names else v for k, v in weights.items()}


def torch_branches(repo: GitRepo, base: bytes, ours: bytes, theirs: bytes) -> None:
    repo.theta("track", "*.pt")
    commit(repo, {PT: base}, "base")
    repo.git("checkout", "-q", "-b", "theirs")
    commit(repo, {PT: theirs}, "theirs")
    repo.git("checkout", "-q", "main")
    commit(repo, {PT: ours}, "ours")


def test_torch_changes_to_different_tensors_merge_cleanly(repo: GitRepo) -> None:
    base = state()
    ours, theirs = changed(base, ["encoder.weight"], 1), changed(base, ["decoder.bias"], 2)
    torch_branches(repo, torch_bytes(base), torch_bytes(ours), torch_bytes(theirs))
    result = merge(repo)
    assert result.returncode == 0, result.stderr  # the serialization ids differ; the state does not
    loaded = torch_load(repo.read(PT))
    assert np.array_equal(loaded["model"]["encoder.weight"].numpy(), ours["encoder.weight"])
    assert np.array_equal(loaded["model"]["decoder.bias"].numpy(), theirs["decoder.bias"])
    assert loaded["epoch"] == 1 and loaded["config"] == {"lr": 0.1}
    assert repo.status() == ""


def test_torch_epoch_changed_on_both_sides_is_a_conflict(repo: GitRepo) -> None:
    base = state()
    ours, theirs = changed(base, ["encoder.weight"], 1), changed(base, ["decoder.bias"], 2)
    torch_branches(repo, torch_bytes(base, 1), torch_bytes(ours, 5), torch_bytes(theirs, 7))
    result = merge(repo)
    assert result.returncode == 1
    assert "non-tensor state" in result.stderr and "Traceback" not in result.stderr
    assert unmerged(repo, PT) == ["1", "2", "3"]
    loaded = torch_load(repo.read(PT))  # a valid checkpoint with both sides' tensor changes
    assert loaded["epoch"] == 5
    assert np.array_equal(loaded["model"]["decoder.bias"].numpy(), theirs["decoder.bias"])
    repo.theta("resolve", PT, "--skeleton", "theirs")
    loaded = torch_load(repo.read(PT))
    assert loaded["epoch"] == 7
    assert np.array_equal(loaded["model"]["encoder.weight"].numpy(), ours["encoder.weight"])
    assert unmerged(repo, PT) == []


def test_torch_epoch_changed_on_one_side_is_taken(repo: GitRepo) -> None:
    base = state()
    ours, theirs = changed(base, ["encoder.weight"], 1), changed(base, ["decoder.bias"], 2)
    torch_branches(repo, torch_bytes(base, 1), torch_bytes(ours, 1), torch_bytes(theirs, 9))
    assert merge(repo).returncode == 0
    loaded = torch_load(repo.read(PT))
    assert loaded["epoch"] == 9
    assert np.array_equal(loaded["model"]["encoder.weight"].numpy(), ours["encoder.weight"])


def test_torch_ties_and_bfloat16_average_equal_their_definitions(repo: GitRepo) -> None:
    rng = np.random.default_rng(9)
    base, adapter = state(), as_bf16(rng.standard_normal((8, 8)).astype(np.float32))
    ours, theirs = changed(base, list(base), 1), changed(base, list(base), 2)
    adapter_ours = as_bf16(adapter + rng.normal(0, 0.05, adapter.shape).astype(np.float32))
    adapter_theirs = as_bf16(adapter + rng.normal(0, 0.05, adapter.shape).astype(np.float32))
    torch_branches(
        repo,
        torch_bytes(base, bf16=adapter),
        torch_bytes(ours, bf16=adapter_ours),
        torch_bytes(theirs, bf16=adapter_theirs),
    )
    write_policy(
        repo,
        'version = 1\n[[rules]]\nparams = ["model.adapter.*"]\nstrategy = "average"\noptions = { weight = 0.3 }\n\n'
        '[[rules]]\nparams = ["model.*"]\nstrategy = "ties"\noptions = { density = 0.3 }\n',
    )
    result = merge(repo)
    assert result.returncode == 0, result.stderr
    loaded = torch_load(repo.read(PT))["model"]
    for name in base:
        expected = ties(base[name], ours[name], theirs[name], density=0.3)
        assert np.array_equal(loaded[name].numpy(), expected), name
    merged_adapter = loaded["adapter.weight"]
    assert merged_adapter.dtype == torch.bfloat16
    expected = average(adapter, adapter_ours, adapter_theirs, 0.3).astype(ml_dtypes.bfloat16)
    assert merged_adapter.view(torch.int16).numpy().tobytes() == expected.view(np.int16).tobytes()
    assert stored(repo, f"HEAD:{PT}")["parameters"]["model.encoder.weight"]["merge"]["strategy"] == "ties"


def onnx_bytes(weights: dict[str, np.ndarray]) -> bytes:
    nodes = [
        helper.make_node("MatMul", ["x", "encoder.weight"], ["h"]),
        helper.make_node("MatMul", ["h", "decoder.weight"], ["y0"]),
        helper.make_node("Add", ["y0", "decoder.bias"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def test_onnx_initializers_merge_by_the_policy(repo: GitRepo) -> None:
    base = state()
    ours = changed(base, ["encoder.weight", "decoder.bias"], 1)
    theirs = changed(base, ["encoder.weight", "decoder.weight"], 2)
    repo.theta("track", "*.onnx")
    commit(repo, {ONNX: onnx_bytes(base)}, "base")
    repo.git("checkout", "-q", "-b", "theirs")
    commit(repo, {ONNX: onnx_bytes(theirs)}, "theirs")
    repo.git("checkout", "-q", "main")
    commit(repo, {ONNX: onnx_bytes(ours)}, "ours")
    write_policy(repo, 'version = 1\ndefault = { strategy = "average", options = { weight = 0.5 } }\n')
    result = merge(repo)
    assert result.returncode == 0, result.stderr
    model = onnx.load_from_string(repo.read(ONNX))
    onnx.checker.check_model(model)
    merged = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert np.array_equal(merged["encoder.weight"], average(None, ours["encoder.weight"], theirs["encoder.weight"]))
    assert np.array_equal(merged["decoder.weight"], theirs["decoder.weight"])
    assert np.array_equal(merged["decoder.bias"], ours["decoder.bias"])
    assert repo.status() == ""
