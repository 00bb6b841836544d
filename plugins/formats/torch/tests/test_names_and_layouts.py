"""How storages become named parameters, and writing layouts that no longer fit the skeleton."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from theta.errors import FormatError
from theta.tensors import Tensor
from theta.testing import read_checkpoint, write_checkpoint
from theta_format_torch import TorchFormat

from .torch_samples import nested_training_state, parameters, saved, shared_storage, transformer_state


def layouts(tensors: dict[str, Tensor]) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {name: (t.dtype, t.shape) for name, t in tensors.items()}


def test_nested_dicts_give_dotted_names_in_save_order() -> None:
    _, tensors = read_checkpoint(TorchFormat(), saved(nested_training_state()), "train.ckpt")
    assert list(tensors) == [
        "model.weight",
        "model.bias",
        "optimizer.state.0.step",
        "optimizer.state.0.exp_avg",
        "optimizer.state.0.exp_avg_sq",
        "optimizer.state.1.step",
        "optimizer.state.1.exp_avg",
        "optimizer.state.1.exp_avg_sq",
    ]
    assert layouts(tensors)["model.weight"] == ("float32", (3, 6))


def test_shared_storages_are_one_parameter_each() -> None:
    state = shared_storage()
    _, tensors = read_checkpoint(TorchFormat(), saved(state), "shared.pt")
    # Tied weights: one storage, named after the first key. Views of `block` add no parameter.
    # The window's storage is covered by no tensor, so it is the flat storage.
    assert layouts(tensors) == {
        "embed.weight": ("float32", (10, 4)),
        "block": ("float32", (6, 8)),
        "window": ("float32", (20,)),
    }
    assert np.array_equal(tensors["window"].numpy(), np.arange(20, dtype=np.float32))


def test_a_covering_tensor_names_its_storage_even_after_a_view() -> None:
    weight = torch.arange(12.0).reshape(3, 4)
    _, tensors = read_checkpoint(TorchFormat(), saved({"weight_t": weight.t(), "weight": weight}), "m.pt")
    assert layouts(tensors) == {"weight": ("float32", (3, 4))}


def test_names_are_stable_across_saves_and_unique() -> None:
    state = {"a": {"b": torch.ones(2)}, "a.b": torch.zeros(3)}
    first = list(read_checkpoint(TorchFormat(), saved(state), "m.pt")[1])
    second = list(read_checkpoint(TorchFormat(), saved(state), "m.pt")[1])
    assert first == second == ["a.b", "a.b@1"]


def test_a_bare_tensor_is_named_tensor() -> None:
    _, tensors = read_checkpoint(TorchFormat(), saved(torch.arange(3)), "t.pt")
    assert layouts(tensors) == {"tensor": ("int64", (3,))}


def load(data: bytes) -> object:
    return torch.load(io.BytesIO(data), weights_only=True)


def test_changed_shape_rebuilds_a_valid_file() -> None:
    state = transformer_state()
    skeleton, tensors = read_checkpoint(TorchFormat(), saved(state), "m.pt")
    tensors["linear1.bias"] = Tensor.from_numpy(np.arange(70, dtype=np.float32))
    loaded = load(write_checkpoint(TorchFormat(), skeleton, tensors))
    assert list(loaded) == list(state)
    assert torch.equal(loaded["linear1.bias"], torch.arange(70, dtype=torch.float32))
    assert torch.equal(loaded["linear2.weight"], state["linear2.weight"])


def test_rebuild_keeps_views_values_and_sharing() -> None:
    state = {**shared_storage(), "epoch": 3, "config": {"lr": 0.5, "tags": ["a", "b"]}}
    skeleton, tensors = read_checkpoint(TorchFormat(), saved(state), "m.pt")
    tensors["extra"] = Tensor.from_numpy(np.ones(2, dtype=np.int64))
    loaded = load(write_checkpoint(TorchFormat(), skeleton, tensors))
    for key in shared_storage():
        assert torch.equal(loaded[key], state[key]), key
    assert loaded["lm_head.weight"] is loaded["embed.weight"]
    assert loaded["block_t"].untyped_storage().data_ptr() == loaded["block"].untyped_storage().data_ptr()
    assert (loaded["epoch"], loaded["config"]) == (3, {"lr": 0.5, "tags": ["a", "b"]})
    assert torch.equal(loaded["extra"], torch.ones(2, dtype=torch.int64))


def test_removed_parameter_drops_its_entries() -> None:
    skeleton, tensors = read_checkpoint(TorchFormat(), saved(shared_storage()), "m.pt")
    del tensors["embed.weight"]
    loaded = load(write_checkpoint(TorchFormat(), skeleton, tensors))
    assert list(loaded) == ["block", "block_top", "block_t", "window"]


def test_reshaping_a_storage_that_only_views_use_is_refused() -> None:
    skeleton, tensors = read_checkpoint(TorchFormat(), saved(shared_storage()), "m.pt")
    tensors["window"] = Tensor.from_numpy(np.zeros(5, dtype=np.float32))
    with pytest.raises(FormatError, match="'window' is a storage that only views use"):
        write_checkpoint(TorchFormat(), skeleton, tensors)


def test_reshaping_a_storage_that_views_also_use_is_refused() -> None:
    skeleton, tensors = read_checkpoint(TorchFormat(), saved(shared_storage()), "m.pt")
    tensors["block"] = Tensor.from_numpy(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(
        FormatError, match=r"parameter 'block' changed shape or dtype, but a view of it .* cannot be recomputed"
    ):
        write_checkpoint(TorchFormat(), skeleton, tensors)


def test_tied_weights_change_shape_together() -> None:
    skeleton, tensors = read_checkpoint(TorchFormat(), saved(shared_storage()), "m.pt")
    tensors["embed.weight"] = Tensor.from_numpy(np.ones((12, 4), dtype=np.float32))
    loaded = load(write_checkpoint(TorchFormat(), skeleton, tensors))
    assert loaded["lm_head.weight"] is loaded["embed.weight"]
    assert torch.equal(loaded["embed.weight"], torch.ones(12, 4))


def test_dtype_change_of_a_parameter() -> None:
    skeleton, tensors = read_checkpoint(TorchFormat(), saved({"w": torch.ones(2, 2), "n": 1}), "m.pt")
    tensors["w"] = Tensor.from_numpy(np.full((2, 2), 3, dtype=np.float16))
    loaded = load(write_checkpoint(TorchFormat(), skeleton, tensors))
    assert list(loaded) == ["w", "n"] and loaded["n"] == 1
    assert torch.equal(loaded["w"], torch.full((2, 2), 3, dtype=torch.float16))


def test_rebuild_keeps_parameters() -> None:
    state = parameters()
    skeleton, tensors = read_checkpoint(TorchFormat(), saved(state), "m.pt")
    tensors["extra"] = Tensor.from_numpy(np.zeros(1, dtype=np.float32))
    loaded = load(write_checkpoint(TorchFormat(), skeleton, tensors))
    assert isinstance(loaded["w"], torch.nn.Parameter) and loaded["w"].requires_grad
    assert isinstance(loaded["frozen"], torch.nn.Parameter) and not loaded["frozen"].requires_grad
    assert torch.equal(loaded["w"], state["w"])
