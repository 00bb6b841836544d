from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from theta.errors import ThetaError
from theta.formats import TensorInfo
from theta.tensors import Tensor
from theta.testing import Change, UpdateTypeContract
from theta.testing import updates as kit
from theta.updates import Update
from theta_update_sparse import SparseUpdate, indices

SPARSE = SparseUpdate()


class TestSparseContract(UpdateTypeContract):
    update_type_name = "sparse"

    def friendly_changes(self) -> Iterator[Change]:
        for dtype in kit.DTYPES:
            w = kit.feed_forward(dtype)
            yield kit.change(f"2% of a {dtype} weight changed", kit.scattered(w), w)
        steps = torch.arange(1000, dtype=torch.int64)
        yield kit.change("a few int64 values negated", torch.where(steps % 97 == 0, -steps, steps), steps)


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_every_weight_of_a_transformer_round_trips_exactly(dtype: torch.dtype) -> None:
    for name, w in kit.transformer(dtype).items():
        update = kit.exact(SPARSE, kit.as_theta(kit.scattered(w, share=0.1)), kit.as_theta(w))
        assert update is not None, name


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_sgd_steps_round_trip_and_a_full_float32_update_is_not_sparse(dtype: torch.dtype) -> None:
    init, trained = kit.transformer(dtype), kit.transformer(dtype, sgd_steps=3)
    updates = [kit.exact(SPARSE, kit.as_theta(trained[k]), kit.as_theta(init[k])) for k in init]
    if dtype == torch.float32:
        assert updates[list(init).index("linear1.weight")] is None


def test_integers_and_booleans_round_trip() -> None:
    steps = torch.arange(1000, dtype=torch.int64)
    kit.exact(SPARSE, kit.as_theta(torch.where(steps % 97 == 0, -steps, steps)), kit.as_theta(steps))
    mask = torch.zeros(50, 40, dtype=torch.bool)
    flipped = mask.clone()
    flipped[3, 7] = flipped[49, 39] = True
    update = kit.exact(SPARSE, kit.as_theta(flipped), kit.as_theta(mask))
    assert update is not None and update.params["count"] == 2


def test_nan_payloads_and_signed_zeros_are_kept() -> None:
    base = np.zeros(64, dtype=np.float32)
    new = base.copy()
    new[5] = -0.0
    new.view(np.uint32)[9] = 0x7FC01234
    update = kit.exact(SPARSE, Tensor.from_numpy(new), Tensor.from_numpy(base))
    assert update is not None and update.params["count"] == 2


@pytest.mark.parametrize("share", [1e-5, 0.02, 0.3])
def test_each_index_form_gives_back_the_positions(share: float) -> None:
    numel = 200_000
    positions = np.flatnonzero(np.random.default_rng(0).random(numel) < share)
    for form, array in indices.encodings(positions, numel).items():
        assert np.array_equal(indices.decoded(form, array, numel), positions), form


@pytest.mark.parametrize("numel", [1, 13, 8 * 1001])
def test_a_bitmap_gives_back_its_positions_at_any_length(numel: int) -> None:
    positions = np.flatnonzero(np.random.default_rng(numel).random(numel) < 0.5)
    bitmap = indices.encodings(positions, numel)["bitmap"]
    assert bitmap.size == -(-numel // 8)
    found = indices.decoded("bitmap", bitmap, numel)
    assert found.dtype == np.int64 and np.array_equal(found, positions)


def test_a_bitmap_with_a_bit_past_the_tensor_is_an_error() -> None:
    base = Tensor.from_numpy(np.zeros(13, np.float32))
    changed = np.zeros(13, np.float32)
    changed[::2] = 1.0
    update = SPARSE.encode(Tensor.from_numpy(changed), base)
    assert update is not None and update.params["index"] == "bitmap"
    stray = update.arrays["index"].numpy().copy()
    stray[-1] |= 1  # bit 15 of a 13-element tensor
    damaged = Update(arrays={**update.arrays, "index": Tensor.from_numpy(stray)}, params=update.params)
    with pytest.raises(ThetaError, match="positions in 13 elements"):
        SPARSE.decode(damaged, base, TensorInfo(dtype="float32", shape=(13,)))


def test_the_smallest_index_form_is_kept() -> None:
    w = torch.zeros(100_000)
    few = w.clone()
    few[[3, 70_000]] = 1.0
    dense_share = torch.where(torch.rand(100_000, generator=torch.Generator().manual_seed(0)) < 0.3, 1.0, w)
    assert SPARSE.encode(kit.as_theta(few), kit.as_theta(w)).params["index"] in ("positions", "gaps")
    assert SPARSE.encode(kit.as_theta(dense_share), kit.as_theta(w)).params["index"] == "bitmap"


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_a_two_percent_change_is_far_smaller_than_dense(dtype: torch.dtype) -> None:
    w = kit.feed_forward(dtype)
    found = kit.sizes(kit.scattered(w), w)
    assert found["sparse"] is not None and found["sparse"] * 10 < found["dense"], found


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_a_dense_change_gains_nothing(dtype: torch.dtype) -> None:
    kit.assert_no_gain_on_a_dense_change("sparse", dtype)


def test_it_needs_a_base_of_the_same_layout() -> None:
    w = kit.as_theta(kit.feed_forward(torch.float32))
    assert SPARSE.encode(w, None) is None
    assert SPARSE.encode(w, kit.as_theta(kit.feed_forward(torch.float16))) is None
    assert SPARSE.encode(w, Tensor.from_numpy(np.zeros(w.shape[::-1], np.float32))) is None


def test_a_damaged_update_is_an_error() -> None:
    base = Tensor.from_numpy(np.zeros(10, np.float32))
    update = SPARSE.encode(Tensor.from_numpy(np.eye(1, 10, 4, np.float32)[0]), base)
    assert update is not None
    info = TensorInfo(dtype="float32", shape=(10,))
    with pytest.raises(ThetaError, match="index form 'zip'"):
        SPARSE.decode(Update(arrays=update.arrays, params={**update.params, "index": "zip"}), base, info)
    with pytest.raises(ThetaError, match="needs a base"):
        SPARSE.decode(update, None, info)
    short = Update(arrays={**update.arrays, "flips": Tensor.from_numpy(np.ones(12, np.uint8))}, params=update.params)
    with pytest.raises(ThetaError, match="3 values for 1 positions"):
        SPARSE.decode(short, base, info)


def test_special_values_round_trip_exactly() -> None:
    kit.assert_exact_on_special_values(SPARSE)


def test_git_stores_its_change_as_sparse_and_checks_out_exactly(tmp_path: Path) -> None:
    assert kit.committed_update_types(tmp_path, torch.bfloat16)["self_attn.in_proj_weight"] == "sparse"
