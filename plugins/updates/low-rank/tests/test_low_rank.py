from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from theta.bits import residual_arrays, residual_by_rows
from theta.errors import ThetaError
from theta.formats import TensorInfo
from theta.tensors import Tensor
from theta.testing import Change, UpdateTypeContract
from theta.testing import updates as kit
from theta.updates import Update
from theta_update_low_rank import LowRankUpdate
from theta_update_low_rank.products import check_exact, exact_factors, exact_product
from theta_update_low_rank.update import reconstruct

LOW_RANK = LowRankUpdate()


class TestLowRankContract(UpdateTypeContract):
    update_type_name = "low-rank"

    def friendly_changes(self) -> Iterator[Change]:
        for dtype in kit.DTYPES:
            w = kit.feed_forward(dtype)
            yield kit.change(f"a rank-8 LoRA merged into a {dtype} weight", kit.merged(w, *kit.lora_factors(w)), w)
            b, a = kit.lora_factors(w, rank=4)
            side = {"lora_a": kit.as_theta(a.to(dtype)), "lora_b": kit.as_theta(b.to(dtype))}
            new = kit.merged(w, b.to(dtype).float(), a.to(dtype).float())
            yield kit.change(f"side-loaded {dtype} LoRA factors", new, w, side)


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_lora_merged_into_every_matrix_round_trips_exactly(dtype: torch.dtype) -> None:
    for name, w in kit.transformer(dtype).items():
        if w.dim() < 2:
            assert LOW_RANK.encode(kit.as_theta(w * 2), kit.as_theta(w)) is None, name
            continue
        b, a = kit.lora_factors(w)
        update = kit.exact(LOW_RANK, kit.as_theta(kit.merged(w, b, a)), kit.as_theta(w))
        assert update is not None and update.params["rank"] == 8, name


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_any_change_that_it_encodes_round_trips_exactly(dtype: torch.dtype) -> None:
    kit.assert_exact_on_training_changes(LOW_RANK, dtype)


def test_a_convolution_kernel_is_seen_as_a_matrix() -> None:
    torch.manual_seed(0)
    w = torch.nn.Conv2d(16, 32, 3).weight.detach()
    b, a = kit.lora_factors(w.reshape(32, -1))
    new = (w.reshape(32, -1) + b @ a).reshape(w.shape)
    update = kit.exact(LOW_RANK, kit.as_theta(new), kit.as_theta(w))
    assert update is not None and update.arrays["a"].shape == (8, 16 * 9)


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_a_rank_8_update_is_smallest_as_low_rank(dtype: torch.dtype) -> None:
    w = kit.feed_forward(dtype)
    kit.assert_smallest("low-rank", kit.sizes(kit.merged(w, *kit.lora_factors(w)), w), margin=1.5)


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_side_loaded_lora_factors_are_used(dtype: torch.dtype) -> None:
    w = kit.feed_forward(dtype)
    b, a = kit.lora_factors(w, rank=4)
    side = {"lora_a": kit.as_theta(a.to(dtype)), "lora_b": kit.as_theta(b.to(dtype))}
    new = kit.merged(w, b.to(dtype).float(), a.to(dtype).float())
    update = kit.exact(LOW_RANK, kit.as_theta(new), kit.as_theta(w), side)
    assert update is not None and update.params == {"factors": "update-data", "rank": 4, "products": "exact"}
    assert kit.stored_size(update.arrays) * 3 < kit.stored_size({"w": kit.as_theta(new)})


def test_unscaled_lora_factors_get_their_scale_fitted() -> None:
    w = kit.feed_forward(torch.float32)
    b, a = kit.lora_factors(w, rank=4)
    new = kit.merged(w, b * 2.0, a)  # lora_alpha / r = 2, not applied to the saved factors
    side = {"lora_a": kit.as_theta(a), "lora_b": kit.as_theta(b)}
    update = kit.exact(LOW_RANK, kit.as_theta(new), kit.as_theta(w), side)
    assert update is not None and update.params["lora_scale"] == pytest.approx(2.0, rel=1e-4)


def test_update_data_for_another_type_is_not_used() -> None:
    w = kit.feed_forward(torch.float32)
    new, base = kit.as_theta(kit.merged(w, *kit.lora_factors(w))), kit.as_theta(w)
    update = kit.exact(LOW_RANK, new, base, {"ia3": kit.as_theta(kit.ia3_scale(64))})
    assert update is not None and update.params == {"factors": "svd", "rank": 8, "products": "exact"}


def test_side_data_that_does_not_fit_is_an_error() -> None:
    w = kit.as_theta(kit.feed_forward(torch.float32))
    a, b = Tensor.from_numpy(np.ones((4, 64), np.float32)), Tensor.from_numpy(np.ones((256, 4), np.float32))
    with pytest.raises(ThetaError, match="lacks lora_b"):
        LOW_RANK.encode(w, w, {"lora_a": a})
    with pytest.raises(ThetaError, match=r"lora_a is \[4, 256\] and lora_b \[256, 4\]"):
        LOW_RANK.encode(w, w, {"lora_a": Tensor.from_numpy(np.ones((4, 256), np.float32)), "lora_b": b})
    with pytest.raises(ThetaError, match="2-D float array, got int32"):
        LOW_RANK.encode(w, w, {"lora_a": Tensor.from_numpy(np.ones((4, 64), np.int32)), "lora_b": b})


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_a_dense_change_gains_nothing(dtype: torch.dtype) -> None:
    kit.assert_no_gain_on_a_dense_change("low-rank", dtype)


def test_it_applies_only_to_float_matrices_with_a_base() -> None:
    w = kit.as_theta(kit.feed_forward(torch.float32))
    ints = Tensor.from_numpy(np.arange(64, dtype=np.int32).reshape(8, 8))
    assert LOW_RANK.encode(w, None) is None
    assert LOW_RANK.encode(ints, ints) is None
    assert LOW_RANK.encode(w, kit.as_theta(kit.feed_forward(torch.bfloat16))) is None


def test_factors_that_do_not_fit_the_layout_are_an_error() -> None:
    w = kit.feed_forward(torch.float32)
    update = LOW_RANK.encode(kit.as_theta(kit.merged(w, *kit.lora_factors(w))), kit.as_theta(w))
    assert update is not None
    with pytest.raises(ThetaError, match=r"do not fit float32 \[64, 256\]"):
        LOW_RANK.decode(update, kit.as_theta(w.T.contiguous()), TensorInfo(dtype="float32", shape=(64, 256)))
    with pytest.raises(ThetaError, match="lacks its b array"):
        LOW_RANK.decode(
            Update(arrays={"a": update.arrays["a"]}), kit.as_theta(w), TensorInfo(dtype="float32", shape=(256, 64))
        )


def test_special_values_round_trip_exactly() -> None:
    kit.assert_exact_on_special_values(LOW_RANK)


def test_git_stores_its_change_as_low_rank_and_checks_out_exactly(tmp_path: Path) -> None:
    assert kit.committed_update_types(tmp_path, torch.bfloat16)["linear1.weight"] == "low-rank"


def test_a_large_matrix_is_decoded_within_twice_its_size() -> None:
    # 32 MiB of bfloat16, 8192 x 2048: each float32 copy of the whole matrix would be 64 MiB (it held 12).
    shape = (8192, 2048)
    rng = np.random.default_rng(1)
    w = kit.memory_test_matrix(shape)
    new = w + (rng.standard_normal((shape[0], 8), dtype=np.float32) * 0.03) @ (
        rng.standard_normal((8, shape[1]), dtype=np.float32) * 0.03
    )
    base, tensor = kit.bfloat16_tensor(w), kit.bfloat16_tensor(new)
    update = LOW_RANK.encode(tensor, base)
    assert update is not None
    info = TensorInfo(dtype="bfloat16", shape=shape)
    decoded, peak = kit.traced_peak(lambda: LOW_RANK.decode(update, base, info))
    assert decoded.sha256() == tensor.sha256()
    assert peak <= 2 * tensor.nbytes, peak


def test_the_screen_declines_noise_on_a_small_matrix_and_keeps_a_low_rank_change() -> None:
    """A matrix small enough to skip sampling (a weight of few rows) is still tested for noise, so
    that a full fine-tune is not fitted with factors there."""
    from theta_update_low_rank.update import screen

    rng = np.random.default_rng(0)
    base = rng.standard_normal((48, 512)).astype(np.float32)
    noise = rng.standard_normal(base.shape).astype(np.float32) * np.float32(0.01)
    low_rank = (rng.standard_normal((48, 4)) @ rng.standard_normal((4, 512))).astype(np.float32) * np.float32(0.01)
    for change, pays in ((noise, False), (low_rank, True)):
        target = base + change
        assert screen(base.view(np.uint32), target.view(np.uint32), "float32").pays is pays


@pytest.mark.parametrize("rank", [1, 8, 16, 64, 1000])
def test_rounded_factors_multiply_exactly_in_any_order(rank: int) -> None:
    rng = np.random.default_rng(rank)
    rows, cols = 24, 40
    scales = np.float32(10.0) ** rng.uniform(-30, 30, (rows, 1)).astype(np.float32)
    b = rng.standard_normal((rows, rank), dtype=np.float32) * scales
    a = rng.standard_normal((rank, cols), dtype=np.float32) * (np.float32(10.0) ** rng.uniform(-30, 30, cols))
    b[0], a[:, 0], b[1, 0], a[0, 1] = 0, 0, np.nan, np.float32(1e-35)
    b, a = exact_factors(b, a)
    assert b.dtype == a.dtype == np.float32 and np.isfinite(b).all() and np.isfinite(a).all()
    check_exact(b, a)
    blas = exact_product(b, a)
    wide_b, wide_a = b.astype(np.float64), a.astype(np.float64)
    for order in (range(rank), reversed(range(rank)), rng.permutation(rank)):
        summed = np.zeros((rows, cols))
        for k in order:
            summed += np.multiply.outer(wide_b[:, k], wide_a[k])
        assert np.array_equal(summed, blas)
    i, j = 5, 7  # one element against exact rational arithmetic
    assert Fraction(float(blas[i, j])) == sum(Fraction(float(b[i, k])) * Fraction(float(a[k, j])) for k in range(rank))


def test_the_stored_factors_make_an_exact_product() -> None:
    w = kit.feed_forward(torch.float32)
    update = LOW_RANK.encode(kit.as_theta(kit.merged(w, *kit.lora_factors(w))), kit.as_theta(w))
    assert update is not None and update.params["products"] == "exact"
    check_exact(update.arrays["b"].numpy(), update.arrays["a"].numpy())


def test_an_update_stored_before_exact_products_still_decodes_exactly() -> None:
    # Updates committed by earlier versions have no `products` parameter: their factors are any
    # float32 values and the approximation accumulates the outer products in order.
    rng = np.random.default_rng(3)
    w = kit.feed_forward(torch.float32)
    b = rng.standard_normal((w.shape[0], 4), dtype=np.float32) * np.float32(0.01)
    a = rng.standard_normal((4, w.shape[1]), dtype=np.float32) * np.float32(0.01)
    new = kit.as_theta(kit.merged(w, torch.from_numpy(b), torch.from_numpy(a)))
    base_values = w.numpy()
    target = np.frombuffer(new.data, dtype=np.uint32).reshape(w.shape)
    planes = residual_by_rows(target, lambda rows: reconstruct(base_values[rows], b[rows], a), "float32")
    arrays = {"a": Tensor.from_numpy(a), "b": Tensor.from_numpy(b), **residual_arrays(planes)}
    legacy = Update(arrays=arrays, params={"rank": 4, "factors": "svd"})
    info = TensorInfo(dtype="float32", shape=tuple(w.shape))
    assert LOW_RANK.decode(legacy, kit.as_theta(w), info).sha256() == new.sha256()


def test_factors_that_are_not_rounded_as_their_parameters_say_are_an_error() -> None:
    w = kit.feed_forward(torch.float32)
    update = LOW_RANK.encode(kit.as_theta(kit.merged(w, *kit.lora_factors(w))), kit.as_theta(w))
    assert update is not None
    info = TensorInfo(dtype="float32", shape=tuple(w.shape))
    b = update.arrays["b"].numpy().copy()
    b[3, 0] = np.nextafter(b[3, 0], np.float32(np.inf)) if b[3, 0] != 0 else np.float32(1e-3)
    b[3, 1] = np.float32(np.abs(b[3]).max() * 3 + 1e-20)  # a row whose largest has more bits than kept
    damaged = Update(arrays={**update.arrays, "b": Tensor.from_numpy(b)}, params=update.params)
    with pytest.raises(ThetaError, match="not rounded for an exact product"):
        LOW_RANK.decode(damaged, kit.as_theta(w), info)
    unknown = Update(arrays=update.arrays, params={**update.params, "products": "fused"})
    with pytest.raises(ThetaError, match="products 'fused'"):
        LOW_RANK.decode(unknown, kit.as_theta(w), info)
