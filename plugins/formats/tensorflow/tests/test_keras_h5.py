from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from theta.errors import FormatError
from theta.tensors import Tensor
from theta.testing import FormatContract, read_checkpoint, write_checkpoint
from theta_format_tensorflow import KerasH5Format

MODELS = ("cnn", "transformer", "transformer_f16", "transformer_bf16")


class TestKerasH5Contract(FormatContract):
    format_name = "keras-h5"

    @pytest.fixture(autouse=True)
    def _files(self, tf_files: Any) -> None:
        self.files = tf_files

    def samples(self, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
        for model in MODELS:
            yield f"{model}.weights.h5", self.files.path(f"{model}.weights.h5").read_bytes()
        yield "cnn_legacy.h5", self.files.path("cnn_legacy.h5").read_bytes()

    def other_format_sample(self, tmp_path: Path) -> bytes:
        from safetensors.numpy import save

        return save({"w": np.ones((4, 4), np.float32)})


def read(tf_files: Any, model: str) -> tuple[bytes, dict[str, Tensor]]:
    name = f"{model}.weights.h5"
    return read_checkpoint(KerasH5Format(), tf_files.path(name).read_bytes(), name)


@pytest.mark.parametrize(
    ("model", "dtype"), [("cnn", "float32"), ("transformer_f16", "float16"), ("transformer_bf16", "bfloat16")]
)
def test_parameters_are_named_by_dataset_path_with_their_dtype(tf_files: Any, model: str, dtype: str) -> None:
    _, tensors = read(tf_files, model)
    assert all(t.dtype == dtype for t in tensors.values())
    assert all(name.startswith("layers/") and "/vars/" in name for name in tensors)
    if model == "cnn":
        assert tensors["layers/conv2d/vars/0"].shape == (3, 3, 3, 4)
        assert np.array_equal(tensors["layers/dense/vars/0"].numpy(), tf_files.weights["cnn"][-2])


def test_changed_tensors_load_in_keras(tf_files: Any, tmp_path: Path) -> None:
    skeleton, tensors = read(tf_files, "transformer")
    expected = [w.copy() for w in tf_files.weights["transformer"]]
    kernel = tensors["layers/dense/vars/0"].numpy().copy()
    assert kernel.shape == (16, 32)
    kernel[0, :] = 7.5
    tensors["layers/dense/vars/0"] = Tensor.from_numpy(kernel)
    index = next(i for i, w in enumerate(expected) if w.shape == kernel.shape and np.array_equal(w[1:], kernel[1:]))
    expected[index] = kernel
    target = tmp_path / "changed.weights.h5"
    target.write_bytes(write_checkpoint(KerasH5Format(), skeleton, tensors))
    assert tf_files.bits(tf_files.load_weights("transformer", target)) == tf_files.bits(expected)


def test_rebuilt_bfloat16_file_loads_in_keras(tf_files: Any, tmp_path: Path) -> None:
    skeleton, tensors = read(tf_files, "transformer_bf16")
    target = tmp_path / "same.weights.h5"
    target.write_bytes(write_checkpoint(KerasH5Format(), skeleton, tensors))
    restored = tf_files.load_weights("transformer_bf16", target)
    assert tf_files.bits(restored) == tf_files.bits(tf_files.weights["transformer_bf16"])


def test_changed_shape_gives_a_valid_file_keras_loads(tf_files: Any, tmp_path: Path) -> None:
    skeleton, _ = read(tf_files, "cnn")
    _, wide = read(tf_files, "cnn_wide")
    assert wide["layers/dense/vars/0"].shape == (144, 6)
    target = tmp_path / "wide.weights.h5"
    target.write_bytes(write_checkpoint(KerasH5Format(), skeleton, wide))
    assert tf_files.bits(tf_files.load_weights("cnn_wide", target)) == tf_files.bits(tf_files.weights["cnn_wide"])


def test_added_and_removed_parameters_give_a_valid_file(tf_files: Any, tmp_path: Path) -> None:
    skeleton, tensors = read(tf_files, "transformer_bf16")
    removed = next(iter(tensors))
    del tensors[removed]
    tensors["extra/counts"] = Tensor.from_numpy(np.arange(6, dtype=np.int64).reshape(2, 3))
    tensors["extra/brain"] = Tensor(dtype="bfloat16", shape=(2,), data=b"\x80\x3f\x00\x40")
    target = tmp_path / "edited.weights.h5"
    target.write_bytes(write_checkpoint(KerasH5Format(), skeleton, tensors))
    with h5py.File(target) as h5:
        assert removed not in h5
        assert np.array_equal(h5["extra/counts"][()], np.arange(6).reshape(2, 3))
        assert h5["extra/brain"].attrs["dtype"] == "bfloat16"
    _, reread = read_checkpoint(KerasH5Format(), target.read_bytes(), "edited.weights.h5")
    assert set(reread) == set(tensors)
    assert bytes(reread["extra/brain"].data) == b"\x80\x3f\x00\x40"


def test_safetensors_named_like_keras_weights_is_rejected() -> None:
    from safetensors.numpy import save

    with pytest.raises(FormatError, match=r"x\.weights\.h5: not an HDF5 file"):
        read_checkpoint(KerasH5Format(), save({"w": np.ones(3, np.float32)}), "x.weights.h5")


def test_hdf5_with_a_damaged_body_is_rejected(tf_files: Any) -> None:
    data = bytearray(tf_files.path("cnn.weights.h5").read_bytes())
    data[8:64] = bytes(56)
    with pytest.raises(FormatError, match=r"bad\.weights\.h5: not a readable HDF5 file"):
        read_checkpoint(KerasH5Format(), bytes(data), "bad.weights.h5")


def test_any_hdf5_layout_round_trips(tmp_path: Path) -> None:
    """Big-endian and userblock files give parameters; chunked, compressed and string data stay in the skeleton."""
    path = tmp_path / "mixed.h5"
    with h5py.File(path, "w", userblock_size=512) as h5:
        h5["big"] = np.arange(6, dtype=">i4").reshape(2, 3)
        h5["flags"] = np.array([True, False, True])
        h5["scalar"] = np.float64(2.5)
        h5.create_dataset("packed", data=np.ones((64, 64), np.float32), compression="gzip")
        h5.create_dataset("chunked", data=np.ones(100, np.float32), chunks=(10,))
        h5["names"] = np.array([b"a", b"bc"])
        h5.attrs["note"] = "kept"
    data = path.read_bytes()
    assert KerasH5Format().sniff(data[:4096])
    skeleton, tensors = read_checkpoint(KerasH5Format(), data, "mixed.h5")
    assert {k: (t.dtype, t.shape) for k, t in tensors.items()} == {
        "big": ("int32", (2, 3)),
        "flags": ("bool", (3,)),
        "scalar": ("float64", ()),
    }
    assert tensors["big"].numpy().tolist() == [[0, 1, 2], [3, 4, 5]]
    tensors["big"] = Tensor.from_numpy(np.full((2, 3), 7, np.int32))
    rebuilt = write_checkpoint(KerasH5Format(), skeleton, tensors)
    target = tmp_path / "rebuilt.h5"
    target.write_bytes(rebuilt)
    with h5py.File(target) as h5:
        assert h5["big"].dtype == np.dtype(">i4")
        assert h5["big"][()].tolist() == [[7] * 3] * 2
        assert h5["packed"][()].sum() == 64 * 64
        assert h5.attrs["note"] == "kept"


def test_legacy_whole_model_file_loads_after_a_change(tf_files: Any, tmp_path: Path) -> None:
    name = "cnn_legacy.h5"
    skeleton, tensors = read_checkpoint(KerasH5Format(), tf_files.path(name).read_bytes(), name)
    bias = "model_weights/head/cnn/head/bias"
    assert bias in tensors
    tensors[bias] = Tensor.from_numpy(np.full(5, -3.0, np.float32))
    target = tmp_path / name
    target.write_bytes(write_checkpoint(KerasH5Format(), skeleton, tensors))
    restored = tf_files.load_model(target)
    assert restored[-1].tolist() == [-3.0] * 5
    assert tf_files.bits(restored[:-1]) == tf_files.bits(tf_files.weights["cnn"][:-1])
