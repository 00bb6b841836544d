"""ONNX element types, their Theta names, and the typed fields (`float_data`, ...) that hold them.

An initializer stores its values either as `raw_data` (little-endian bytes, exactly what a
Theta tensor holds) or in a typed repeated field: `float_data` and `double_data` are packed
fixed-width numbers (the same bytes as raw data), `int32_data`, `int64_data` and
`uint64_data` are packed varints, each value widened to 32 or 64 bits.
"""

from __future__ import annotations

import numpy as np
from attrs import frozen

# TensorProto field numbers.
DIMS = 1
DATA_TYPE = 2
SEGMENT = 3
FLOAT_DATA = 4
INT32_DATA = 5
STRING_DATA = 6
INT64_DATA = 7
NAME = 8
RAW_DATA = 9
DOUBLE_DATA = 10
UINT64_DATA = 11
EXTERNAL_DATA = 13
DATA_LOCATION = 14

EXTERNAL = 1

ONNX_TO_THETA = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
    15: "complex128", 16: "bfloat16", 17: "float8_e4m3fn", 19: "float8_e5m2",
}  # fmt: skip
THETA_TO_ONNX = {v: k for k, v in ONNX_TO_THETA.items()}


@frozen(kw_only=True)
class TypedField:
    """How a typed repeated field carries one element type.

    `wide` is the NumPy type of the widened values on the wire (None: fixed-width, the bytes
    are the raw data); `narrow` is the NumPy type that reinterprets Theta's bytes.
    """

    number: int
    wide: str | None
    narrow: str


_INT32 = {"int32": "int32", "int16": "int16", "int8": "int8", "uint16": "uint16", "uint8": "uint8",
          "bool": "uint8", "float16": "uint16", "bfloat16": "uint16", "float8_e4m3fn": "uint8",
          "float8_e5m2": "uint8"}  # fmt: skip

TYPED_FIELDS: dict[str, TypedField] = {
    "float32": TypedField(number=FLOAT_DATA, wide=None, narrow="float32"),
    "complex64": TypedField(number=FLOAT_DATA, wide=None, narrow="float32"),
    "float64": TypedField(number=DOUBLE_DATA, wide=None, narrow="float64"),
    "complex128": TypedField(number=DOUBLE_DATA, wide=None, narrow="float64"),
    "int64": TypedField(number=INT64_DATA, wide="int64", narrow="int64"),
    "uint32": TypedField(number=UINT64_DATA, wide="uint64", narrow="uint32"),
    "uint64": TypedField(number=UINT64_DATA, wide="uint64", narrow="uint64"),
    **{name: TypedField(number=INT32_DATA, wide="int32", narrow=narrow) for name, narrow in _INT32.items()},
}


class VarintError(ValueError):
    pass


def decode_varints(payload: bytes) -> np.ndarray:
    """All varints of a packed field as uint64, decoded without a Python loop."""
    data = np.frombuffer(payload, dtype=np.uint8)
    if data.size == 0:
        return np.zeros(0, dtype=np.uint64)
    ends = np.flatnonzero(data < 0x80)
    if ends.size == 0 or ends[-1] != data.size - 1:
        raise VarintError("packed varints end in the middle of a value")
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise VarintError("a packed varint is longer than 10 bytes")
    position = np.arange(data.size) - np.repeat(starts, lengths)
    parts = (data & 0x7F).astype(np.uint64) << (7 * position).astype(np.uint64)
    return np.bitwise_or.reduceat(parts, starts)


def encode_varints(values: np.ndarray) -> bytes:
    """Packed varints of `values` (read as uint64), as protobuf writes them."""
    wide = np.ascontiguousarray(values).view(np.uint64).reshape(-1)
    if wide.size == 0:
        return b""
    count = np.ones(wide.size, dtype=np.int64)
    for k in range(1, 10):
        count += wide >= (np.uint64(1) << np.uint64(7 * k))
    k = np.arange(10, dtype=np.uint64)
    groups = ((wide[:, None] >> (np.uint64(7) * k)) & np.uint64(0x7F)).astype(np.uint8)
    groups |= np.where(np.arange(10) < (count[:, None] - 1), 0x80, 0).astype(np.uint8)
    return groups[np.arange(10) < count[:, None]].tobytes()


def typed_to_raw(dtype_name: str, payload: bytes) -> bytes:
    """The little-endian bytes of the values a typed field's packed payload holds."""
    spec = TYPED_FIELDS[dtype_name]
    if spec.wide is None:
        return bytes(payload)
    values = decode_varints(payload).view(np.int64)
    return values.astype(np.dtype(spec.narrow).newbyteorder("<")).tobytes()


def raw_to_typed(dtype_name: str, raw: bytes | memoryview) -> bytes:
    """The packed payload of the typed field that holds `raw` (inverse of `typed_to_raw`)."""
    spec = TYPED_FIELDS[dtype_name]
    if spec.wide is None:
        return bytes(raw)
    narrow = np.frombuffer(raw, dtype=np.dtype(spec.narrow).newbyteorder("<"))
    return encode_varints(narrow.astype(np.int64))
