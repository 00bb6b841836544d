import warnings
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
from theta_update_ia3 import IA3Update

IA3 = IA3Update()


class TestIA3Contract(UpdateTypeContract):
    update_type_name = "ia3"

    def friendly_changes(self) -> Iterator[Change]:
        for dtype in kit.DTYPES:
            w = kit.feed_forward(dtype)
            yield kit.change(f"{dtype} columns scaled", kit.ia3_scaled(w, kit.ia3_scale(64), "columns"), w)
            scale = kit.ia3_scale(256).to(dtype)
            new = kit.ia3_scaled(w, scale, "rows")
            yield kit.change(f"{dtype} rows scaled by a side-loaded vector", new, w, {"ia3": kit.as_theta(scale)})


@pytest.mark.parametrize("axis", ["rows", "columns"])
@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_every_scaled_matrix_round_trips_exactly(dtype: torch.dtype, axis: str) -> None:
    for name, w in kit.transformer(dtype).items():
        if w.dim() < 2:
            continue
        scale = kit.ia3_scale(w.shape[0] if axis == "rows" else w.shape[1])
        update = kit.exact(IA3, kit.as_theta(kit.ia3_scaled(w, scale, axis)), kit.as_theta(w))
        assert update is not None and update.params == {"axis": axis, "scale": "estimated"}, name


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_any_change_that_it_encodes_round_trips_exactly(dtype: torch.dtype) -> None:
    kit.assert_exact_on_training_changes(IA3, dtype)


def test_a_float32_scaling_is_recovered_bit_for_bit() -> None:
    w = kit.feed_forward(torch.float32)
    update = IA3.encode(kit.as_theta(kit.ia3_scaled(w, kit.ia3_scale(64), "columns")), kit.as_theta(w))
    assert update is not None and set(update.arrays) == {"scale"}
    assert np.array_equal(update.arrays["scale"].numpy(), kit.ia3_scale(64).numpy())


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_a_scaled_feed_forward_weight_is_smallest_as_ia3(dtype: torch.dtype) -> None:
    w = kit.feed_forward(dtype)
    kit.assert_smallest("ia3", kit.sizes(kit.ia3_scaled(w, kit.ia3_scale(64), "columns"), w), margin=4)


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_a_side_loaded_vector_is_used(dtype: torch.dtype) -> None:
    w = kit.feed_forward(dtype)
    scale = kit.ia3_scale(256).to(dtype)
    new = kit.as_theta(kit.ia3_scaled(w, scale, "rows"))
    update = kit.exact(IA3, new, kit.as_theta(w), {"ia3": kit.as_theta(scale)})
    assert update is not None and update.params == {"axis": "rows", "scale": "update-data"}
    assert set(update.arrays) == {"scale"}  # the product is reproduced exactly: no residual


def test_a_square_matrix_tries_both_axes_for_a_side_loaded_vector() -> None:
    w = kit.transformer(torch.float32)["self_attn.out_proj.weight"]
    scale = kit.ia3_scale(64)
    update = kit.exact(
        IA3, kit.as_theta(kit.ia3_scaled(w, scale, "columns")), kit.as_theta(w), {"ia3": kit.as_theta(scale)}
    )
    assert update is not None and update.params["axis"] == "columns"


def test_update_data_for_another_type_is_not_used() -> None:
    w = kit.feed_forward(torch.float32)
    new, base = kit.as_theta(kit.ia3_scaled(w, kit.ia3_scale(64), "columns")), kit.as_theta(w)
    update = kit.exact(IA3, new, base, {"lora_a": kit.as_theta(w[:4])})
    assert update is not None and update.params["scale"] == "estimated"


def test_side_data_that_does_not_fit_is_an_error() -> None:
    w = kit.as_theta(kit.feed_forward(torch.float32))
    with pytest.raises(ThetaError, match="has 10 values; a weight of 256 x 64 needs 256 or 64"):
        IA3.encode(w, w, {"ia3": Tensor.from_numpy(np.ones(10, np.float32))})


@pytest.mark.parametrize("dtype", kit.DTYPES, ids=str)
def test_a_dense_change_gains_nothing(dtype: torch.dtype) -> None:
    kit.assert_no_gain_on_a_dense_change("ia3", dtype)


def test_it_applies_only_to_float_matrices_with_a_base() -> None:
    w = kit.as_theta(kit.feed_forward(torch.float32))
    bias = Tensor.from_numpy(np.ones(8, np.float32))
    assert IA3.encode(w, None) is None
    assert IA3.encode(bias, bias) is None
    assert IA3.encode(w, kit.as_theta(kit.feed_forward(torch.float16))) is None


def test_a_scale_along_an_unknown_axis_is_an_error() -> None:
    w = kit.feed_forward(torch.float32)
    update = IA3.encode(kit.as_theta(kit.ia3_scaled(w, kit.ia3_scale(64), "columns")), kit.as_theta(w))
    assert update is not None
    info = TensorInfo(dtype="float32", shape=(256, 64))
    with pytest.raises(ThetaError, match="along 'rows' does not fit"):
        IA3.decode(Update(arrays=update.arrays, params={**update.params, "axis": "rows"}), kit.as_theta(w), info)


def test_special_values_round_trip_exactly() -> None:
    kit.assert_exact_on_special_values(IA3)


def test_git_stores_its_change_as_ia3_and_checks_out_exactly(tmp_path: Path) -> None:
    assert kit.committed_update_types(tmp_path, torch.bfloat16)["linear2.weight"] == "ia3"


def test_a_large_matrix_is_encoded_and_decoded_within_three_times_its_size() -> None:
    # 32 MiB of bfloat16, 8192 x 2048: each float32 copy of the whole matrix would be 64 MiB (it held 12).
    shape = (8192, 2048)
    w = kit.memory_test_matrix(shape)
    new = w * (1 + 0.2 * np.random.default_rng(1).standard_normal(shape[0], dtype=np.float32))[:, None]
    base, tensor = kit.bfloat16_tensor(w), kit.bfloat16_tensor(new)
    update, encode_peak = kit.traced_peak(lambda: IA3.encode(tensor, base))
    assert update is not None
    decoded, decode_peak = kit.traced_peak(lambda: IA3.decode(update, base, TensorInfo(dtype="bfloat16", shape=shape)))
    assert decoded.sha256() == tensor.sha256()
    assert encode_peak <= 3 * tensor.nbytes and decode_peak <= 3 * tensor.nbytes, (encode_peak, decode_peak)


def test_the_cheap_test_tells_a_scaling_from_a_full_fine_tune() -> None:
    from theta_update_ia3.scales import scaling_axes

    rng = np.random.default_rng(0)
    base = rng.standard_normal((64, 96)).astype(np.float32)
    per_row = base * (1 + 0.2 * rng.standard_normal((64, 1))).astype(np.float32)
    per_column = base * (1 + 0.2 * rng.standard_normal((1, 96))).astype(np.float32)
    noise = base + 0.01 * rng.standard_normal(base.shape).astype(np.float32)
    bits = base.view(np.uint32)
    assert scaling_axes(bits, per_row.view(np.uint32), "float32") == ["rows"]
    assert scaling_axes(bits, per_column.view(np.uint32), "float32") == ["columns"]
    assert scaling_axes(bits, noise.view(np.uint32), "float32") == []
    assert scaling_axes(bits, bits, "float32") == ["rows", "columns"]  # no change at all


@pytest.mark.parametrize("value_dtype", [np.float32, np.float64])
def test_the_medians_of_the_rows_are_numpys(value_dtype: type[np.floating]) -> None:
    from theta_update_ia3.scales import slice_medians

    rng = np.random.default_rng(3)
    for trial in range(400):
        rows, cols = int(rng.integers(1, 12)), int(rng.integers(1, 40))  # odd and even widths
        values = rng.standard_normal((rows, cols)).astype(value_dtype)
        if trial % 3 == 0:
            values = np.round(values * 2)  # ties
        for special, share in ((np.nan, 0.3), (np.inf, 0.1), (-np.inf, 0.1)):
            if trial % 2:
                values[rng.random(values.shape) < share] = special
        if trial % 5 == 0:
            values[0] = np.nan  # a row with nothing to take the median of
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice encountered"
            expected = np.nanmedian(values, axis=1)
        got = slice_medians(values)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(slice_medians(values.T.copy().T), expected)  # any memory layout


def test_the_median_of_huge_values_does_not_overflow() -> None:
    from theta_update_ia3.scales import slice_medians

    huge = np.full((2, 5), np.finfo(np.float32).max, dtype=np.float32)
    assert np.array_equal(slice_medians(huge), huge[:, 0])
