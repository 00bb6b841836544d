"""The npz format against the kernel's format contract, plus what numpy itself makes of the results."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from theta.errors import FormatError
from theta.formats import Layout, TensorInfo
from theta.tensors import Tensor
from theta.testing import FormatContract, read_checkpoint, write_checkpoint
from theta_format_npz.format import NpzFormat

FORMAT = NpzFormat()


def savez(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def model(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "embed": rng.standard_normal((50, 16)).astype(np.float32),
        "layer.weight": rng.standard_normal((16, 16)).astype(np.float16),
        "layer.bias": np.zeros(16, np.float64),
        "steps": np.arange(7, dtype=np.int64),
        "flag": np.array(True),
    }


class TestNpzContract(FormatContract):
    format_name = "npz"

    def samples(self, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
        yield "model.npz", savez(**model())
        yield "empty-and-scalars.npz", savez(empty=np.zeros((0, 3), np.float32), scalar=np.array(2.5))


def test_arrays_come_back_as_numpy_saved_them() -> None:
    arrays = model()
    _, tensors = read_checkpoint(FORMAT, savez(**arrays), "m.npz")
    assert list(tensors) == list(arrays)
    for name, array in arrays.items():
        assert np.array_equal(tensors[name].numpy(), array)


def test_a_changed_array_gives_a_file_numpy_reads() -> None:
    skeleton, tensors = read_checkpoint(FORMAT, savez(**model()), "m.npz")
    changed = model(1)["embed"]
    tensors["embed"] = Tensor.from_numpy(changed)
    rebuilt = write_checkpoint(FORMAT, skeleton, tensors)
    with zipfile.ZipFile(io.BytesIO(rebuilt)) as archive:
        assert archive.testzip() is None  # every CRC-32 holds
    loaded = np.load(io.BytesIO(rebuilt))
    assert np.array_equal(loaded["embed"], changed)
    assert read_checkpoint(FORMAT, rebuilt, "m.npz")[0] == skeleton  # the skeleton does not depend on the values


def test_new_names_or_shapes_give_a_new_archive_numpy_reads() -> None:
    skeleton, tensors = read_checkpoint(FORMAT, savez(**model()), "m.npz")
    tensors["extra"] = Tensor.from_numpy(np.ones((2, 2), np.float32))
    layout = Layout(
        skeleton=skeleton,
        parameters={n: TensorInfo(dtype=t.dtype, shape=t.shape) for n, t in tensors.items()},
        load=lambda name: tensors[name],
        path="m.npz",
    )
    sink = io.BytesIO()
    FORMAT.write(layout, sink)
    loaded = np.load(io.BytesIO(sink.getvalue()))
    assert sorted(loaded.files) == sorted(tensors)
    assert np.array_equal(loaded["extra"], np.ones((2, 2), np.float32))


def test_compressed_archives_are_refused_with_advice() -> None:
    with pytest.raises(FormatError, match=r"m\.npz: member 'embed\.npy' is compressed .*numpy\.savez"):
        read_checkpoint(FORMAT, savez(compressed=True, **model()), "m.npz")


def test_object_arrays_are_refused_without_unpickling() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, objects=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FormatError, match="pickle"):
        read_checkpoint(FORMAT, buffer.getvalue(), "m.npz")


def test_a_header_that_claims_more_than_the_member_holds() -> None:
    data = savez(w=np.zeros(4, np.float32))
    lying = data.replace(b"'shape': (4,)", b"'shape': (9,)")
    with pytest.raises(FormatError, match="claims float32 \\[9\\]"):
        read_checkpoint(FORMAT, lying, "m.npz")
