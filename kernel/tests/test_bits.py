import numpy as np
import pytest

from theta import bits
from theta.formats import TensorInfo
from theta.tensors import Tensor

RNG = np.random.default_rng(0)


def every_bit_pattern_of_float32(count: int) -> np.ndarray:
    """Random float32 bits: normal numbers, subnormals, infinities and NaNs of every payload."""
    return RNG.integers(0, 2**32, count, dtype=np.uint32).view(np.float32)


def test_bfloat16_rounding_is_to_nearest_even_and_keeps_nan() -> None:
    values = every_bit_pattern_of_float32(1 << 16)
    wide = values.view(np.uint32)
    with np.errstate(over="ignore"):
        expected = ((wide + np.uint32(0x7FFF) + ((wide >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    expected[nan] = ((wide[nan] >> 16) | 0x40).astype(np.uint16)
    assert nan.any()
    assert np.array_equal(bits.to_bits(values, "bfloat16"), expected)
    strided = values.reshape(256, 256)[:, ::2]
    assert np.array_equal(bits.to_bits(strided, "bfloat16"), expected.reshape(256, 256)[:, ::2])


@pytest.mark.parametrize("width", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_bytes_are_grouped_highest_first_and_back(width: type[np.unsignedinteger]) -> None:
    elements = RNG.integers(0, np.iinfo(width).max, 1001, dtype=width, endpoint=True)
    planes = bits.group_bytes(elements)
    itemsize = elements.itemsize
    by_element = elements.view(np.uint8).reshape(-1, itemsize)
    for plane in range(itemsize):
        assert np.array_equal(planes.reshape(itemsize, -1)[plane], by_element[:, itemsize - 1 - plane])
    assert np.array_equal(bits.ungroup_bytes(planes, itemsize), elements)


def test_evenly_spaced_indices_are_distinct_and_span_the_range() -> None:
    assert bits.evenly_spaced(10, 3).tolist() == [0, 4, 9]
    assert bits.evenly_spaced(5, 100).tolist() == [0, 1, 2, 3, 4]
    assert bits.evenly_spaced(1000, 999).size == 999
    assert bits.evenly_spaced(7, 0).tolist() == [0]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "float64"])
@pytest.mark.parametrize("shape", [(3000, 700), (1, 5000), (5000, 1), (37, 11)])
def test_a_residual_made_by_rows_is_the_residual_made_whole(
    dtype: str, shape: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bits, "ROW_BLOCK_ELEMENTS", 4096)  # several blocks even for the small shapes
    values = RNG.standard_normal(shape).astype(np.float64 if dtype == "float64" else np.float32)
    target = bits.to_bits(values, dtype).reshape(shape)
    approx = values * (1 + 1e-3 * RNG.standard_normal(shape))
    approx = approx.astype(values.dtype)
    whole = bits.residual(target, approx, dtype)
    by_rows = bits.residual_by_rows(target, lambda rows: approx[rows], dtype)
    assert np.array_equal(by_rows, whole)

    info = TensorInfo(dtype=dtype, shape=shape)
    arrays = bits.residual_arrays(whole)
    expected = Tensor.from_numpy(target, dtype_name=dtype)
    assert bits.corrected(approx, arrays, info).sha256() == expected.sha256()
    assert bits.corrected_by_rows(lambda rows: approx[rows], arrays, info).sha256() == expected.sha256()


@pytest.mark.parametrize("flipped", [None, 0, (1 << 20) + 3, (3 << 20) + 4])  # chunks 1 and 2, the tail
def test_same_bits_compares_every_byte_across_chunks(flipped: int | None) -> None:
    data = np.random.default_rng(0).integers(0, 256, (3 << 20) + 5, dtype=np.uint8)
    other = data.copy()
    if flipped is not None:
        other[flipped] ^= 1
    assert Tensor.from_numpy(data).same_bits(Tensor.from_numpy(other)) is (flipped is None)
    assert not Tensor.from_numpy(data[:-1]).same_bits(Tensor.from_numpy(data[1:]))
