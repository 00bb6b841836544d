"""The `.npy` header: `\\x93NUMPY`, a version, a length, then a Python dict literal.

`{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, padded with spaces and a newline
so that the data starts at a multiple of 64 bytes. The literal is read with
`ast.literal_eval`, which evaluates literals only: nothing in a file is ever run.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 16
MAX_NDIM = 64

# numpy's little-endian (or byte-order-free) type strings, and the Theta dtypes they hold
TO_THETA = {
    "|b1": "bool", "|u1": "uint8", "|i1": "int8", "<u2": "uint16", "<i2": "int16", "<u4": "uint32",
    "<i4": "int32", "<u8": "uint64", "<i8": "int64", "<f2": "float16", "<f4": "float32", "<f8": "float64",
    "<c8": "complex64", "<c16": "complex128",
}  # fmt: skip
FROM_THETA = {v: k for k, v in TO_THETA.items()}


class NpyError(Exception):
    """The member is not an `.npy` file Theta can read; the message says why."""


@dataclass(frozen=True)
class Header:
    dtype: str
    shape: tuple[int, ...]
    length: int  # bytes before the array's data


def parse(head: bytes) -> Header:
    """The header at the start of `head` (which holds at least the whole header, when there is one)."""
    if not head.startswith(MAGIC) or len(head) < 10:
        raise NpyError("it does not start with the .npy magic bytes")
    major = head[6]
    if major == 1:
        size, start = int.from_bytes(head[8:10], "little"), 10
    elif major in (2, 3):
        size, start = int.from_bytes(head[8:12], "little"), 12
    else:
        raise NpyError(f".npy format version {major} is not known")
    if size > MAX_HEADER:
        raise NpyError(f"its header claims {size} bytes, more than {MAX_HEADER}")
    if len(head) < start + size:
        raise NpyError("its header is cut short")
    try:
        text = head[start : start + size].decode("utf-8" if major == 3 else "latin1")
        fields = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        raise NpyError("its header is not a Python dict literal") from None
    if not isinstance(fields, dict) or set(fields) != {"descr", "fortran_order", "shape"}:
        raise NpyError("its header must hold exactly 'descr', 'fortran_order' and 'shape'")
    descr, fortran, shape = fields["descr"], fields["fortran_order"], fields["shape"]
    if not isinstance(descr, str) or descr not in TO_THETA:
        if descr in ("|O", "O") or not isinstance(descr, str):
            raise NpyError(f"arrays of type {descr!r} need pickle or structured records, which Theta does not read")
        raise NpyError(f"arrays of type {descr!r} are not supported (big-endian or an unknown type)")
    if fortran is not False:
        raise NpyError("it is stored in Fortran order; save it in C order (np.ascontiguousarray)")
    if (
        not isinstance(shape, tuple)
        or len(shape) > MAX_NDIM
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise NpyError(f"its shape {shape!r} is not a tuple of at most {MAX_NDIM} non-negative integers")
    return Header(dtype=TO_THETA[descr], shape=shape, length=start + size)


def build(dtype: str, shape: tuple[int, ...]) -> bytes:
    """The header numpy writes for a C-order array of `dtype` and `shape` (version 1.0)."""
    text = f"{{'descr': '{FROM_THETA[dtype]}', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    total = 10 + len(text) + 1
    text += " " * (-total % 64) + "\n"
    return MAGIC + b"\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")
