"""Tensors and changes for the update-type contract, built with NumPy alone.

Each sample is a `Change`: a new version of a tensor, its base (the version before) and the
update data a user might supply. The dtypes are those checkpoints hold (float32, float16,
bfloat16, float64, integers, booleans); the special values are the ones an exact encoding
must keep: NaN payloads of either sign, infinities, signed zeros, subnormals, the largest
finite values. bfloat16 is carried as its raw bits, as the kernel does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
from attrs import field, frozen

from theta.tensors import Tensor, dtype

FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
INT_DTYPES = ("int8", "uint8", "int32", "int64")
SHAPES = ((48, 40), (64,))
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}

# Raw bits of special values, by float dtype: a NaN with a payload, a negative NaN with a payload,
# +inf, -inf, -0.0, the smallest subnormal and its negative, the largest finite value.
SPECIAL_BITS = {
    "bfloat16": (0x7FC5, 0xFFC3, 0x7F80, 0xFF80, 0x8000, 0x0001, 0x8001, 0x7F7F),
    "float16": (0x7E05, 0xFE03, 0x7C00, 0xFC00, 0x8000, 0x0001, 0x8001, 0x7BFF),
    "float32": (0x7FC01235, 0xFFC00003, 0x7F800000, 0xFF800000, 0x80000000, 0x1, 0x80000001, 0x7F7FFFFF),
    "float64": (
        0x7FF8000000012345,
        0xFFF8000000000003,
        0x7FF0000000000000,
        0xFFF0000000000000,
        0x8000000000000000,
        0x1,
        0x8000000000000001,
        0x7FEFFFFFFFFFFFFF,
    ),
}


@frozen(kw_only=True)
class Change:
    """`tensor`, the new version of `base` (None for a type that stores whole tensors), and update data."""

    label: str
    tensor: Tensor
    base: Tensor | None
    side_data: Mapping[str, Tensor] | None = field(default=None)


def in_dtype(values: np.ndarray, name: str) -> Tensor:
    """`values` converted to dtype `name`; bfloat16 rounds float32 to nearest even and keeps NaNs NaN."""
    if name != "bfloat16":
        return Tensor.from_numpy(np.ascontiguousarray(np.asarray(values).astype(name)))
    single = np.ascontiguousarray(np.asarray(values).astype(np.float32))
    bits = single.view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(single)
    rounded[nan] = ((bits[nan] >> 16) | 0x0040).astype(np.uint16)
    return Tensor.from_numpy(rounded, dtype_name="bfloat16")


def bits_of(tensor: Tensor) -> np.ndarray:
    """A writable copy of the tensor's elements as unsigned integers of the same width."""
    unsigned = np.dtype(_UNSIGNED[dtype(tensor.dtype).itemsize]).newbyteorder("<")
    return np.frombuffer(bytes(tensor.data), dtype=unsigned).reshape(tensor.shape).copy()


def from_bits(bits: np.ndarray, name: str) -> Tensor:
    """The tensor of dtype `name` whose elements have the raw bits `bits`."""
    contiguous = np.ascontiguousarray(bits)
    if dtype(name).native:
        return Tensor.from_numpy(contiguous.view(dtype(name).numpy_name))
    return Tensor.from_numpy(contiguous, dtype_name=name)


def as_float64(tensor: Tensor) -> np.ndarray:
    """The values of a float tensor (bfloat16 too) as float64."""
    if tensor.dtype == "bfloat16":
        return (bits_of(tensor).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return tensor.numpy().astype(np.float64)


def _float_changes(base: np.ndarray, rng: np.random.Generator) -> Iterator[tuple[str, np.ndarray]]:
    """Changes of float64 values: what fine-tuning, adapters and edits do to a weight."""
    one = base.copy()
    one.flat[one.size // 3] += 0.5
    yield "one element changed", one
    mask = rng.random(base.shape) < 0.02
    mask.flat[0] = True
    yield "2% of the elements changed", np.where(mask, base * (1 + 0.05 * rng.standard_normal(base.shape)), base)
    yield "every element moved", base + rng.standard_normal(base.shape) * base.std()
    if base.ndim == 2:
        rows, cols = base.shape
        yield "a rank-2 product added", base + rng.standard_normal((rows, 2)) @ rng.standard_normal((2, cols)) * 0.02
        yield "rows scaled", base * (1 + 0.2 * rng.standard_normal(rows))[:, None]
        yield "columns scaled", base * (1 + 0.2 * rng.standard_normal(cols))[None, :]


def dtype_changes() -> Iterator[Change]:
    """Every common dtype, as a matrix and a vector, changed in the ways checkpoints change."""
    rng = np.random.default_rng(7)
    for name in FLOAT_DTYPES:
        for shape in SHAPES:
            values = rng.standard_normal(shape) * 0.05
            base = in_dtype(values, name)
            for label, new in _float_changes(values, rng):
                yield Change(label=f"{name} {list(shape)}: {label}", tensor=in_dtype(new, name), base=base)
    for name in INT_DTYPES:
        info = np.iinfo(name)
        for shape in SHAPES:
            old = rng.integers(info.min, info.max, shape, dtype=name, endpoint=True)
            one = old.copy()
            one.flat[5] ^= 1
            some = old.copy()
            some.flat[:: max(old.size // 20, 1)] = info.max
            every = (old.astype(np.int64) + rng.integers(1, 50, shape)).astype(name)  # wraps around
            base = Tensor.from_numpy(old)
            for label, new in (("one element changed", one), ("some set to the maximum", some), ("every", every)):
                yield Change(label=f"{name} {list(shape)}: {label}", tensor=Tensor.from_numpy(new), base=base)
    mask = rng.random((32, 24)) < 0.5
    flipped = mask.copy()
    flipped[3, 4] = not flipped[3, 4]
    yield Change(label="bool [32, 24]: one flipped", tensor=Tensor.from_numpy(flipped), base=Tensor.from_numpy(mask))
    scalar = np.array(3.25, np.float32)
    yield Change(label="float32 []: a scalar", tensor=Tensor.from_numpy(scalar + 1), base=Tensor.from_numpy(scalar))
    step = np.array(41, np.int64)
    yield Change(label="int64 []: a step counter", tensor=Tensor.from_numpy(step + 1), base=Tensor.from_numpy(step))


def special_values(name: str, shape: tuple[int, ...] = (48, 40), seed: int = 11) -> Tensor:
    """A weight of dtype `name` whose first elements are every special value, the rest small normal values."""
    bits = bits_of(in_dtype(np.random.default_rng(seed).standard_normal(shape) * 0.05, name))
    specials = SPECIAL_BITS[name]
    bits.reshape(-1)[: len(specials)] = specials
    return from_bits(bits, name)


def special_value_changes() -> Iterator[Change]:
    """Changes beside, into and of special values, in every float dtype."""
    for name in FLOAT_DTYPES:
        specials = SPECIAL_BITS[name]
        base = special_values(name)
        kept = bits_of(base)
        kept.reshape(-1)[100] ^= 1  # the lowest bit of one ordinary value
        yield Change(label=f"{name}: one bit beside special values", tensor=from_bits(kept, name), base=base)
        became = bits_of(base)
        flat = became.reshape(-1)
        flat[200 : 200 + len(specials)] = specials  # ordinary values became special
        flat[0], flat[1] = flat[1], flat[0]  # the two NaN payloads swapped
        flat[4] = 0  # -0.0 became +0.0
        yield Change(label=f"{name}: values became special", tensor=from_bits(became, name), base=base)
        yield Change(label=f"{name}: rows scaled around special values", tensor=_rows_scaled(base), base=base)


def _rows_scaled(tensor: Tensor) -> Tensor:
    """Ordinary values times a per-row factor; special values kept as they are."""
    values = as_float64(tensor)
    factors = 1 + 0.1 * np.random.default_rng(13).standard_normal(values.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):  # the special values, put back below
        scaled = bits_of(in_dtype(values * factors[:, None], tensor.dtype))
    original = bits_of(tensor)
    special = ~np.isfinite(values) | (np.abs(values) < 1e-30) | (np.abs(values) > 1e30)
    scaled[special] = original[special]
    return from_bits(scaled, tensor.dtype)


def with_special_values(change: Change) -> Change | None:
    """`change` with every special value written into the same places of tensor and base, and one
    ordinary value that became a NaN with a payload; None for a tensor that is not floating point."""
    specials = SPECIAL_BITS.get(change.tensor.dtype)
    if specials is None or change.tensor.numel < 2 * len(specials):
        return None
    bits = bits_of(change.tensor)
    bits.reshape(-1)[: len(specials)] = specials
    bits.reshape(-1)[len(specials) + 3] = specials[0]
    base = change.base
    if base is not None and base.same_layout(change.tensor):
        base_bits = bits_of(base)
        base_bits.reshape(-1)[: len(specials)] = specials
        base = from_bits(base_bits, base.dtype)
    return Change(
        label=f"{change.label}, with special values",
        tensor=from_bits(bits, change.tensor.dtype),
        base=base,
        side_data=change.side_data,
    )
