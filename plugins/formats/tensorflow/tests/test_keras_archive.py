from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from theta.errors import FormatError
from theta.tensors import Tensor
from theta.testing import FormatContract, read_checkpoint, write_checkpoint
from theta_format_tensorflow import KerasArchiveFormat, KerasH5Format

MODELS = ("cnn", "transformer", "transformer_f16", "transformer_bf16")


class TestKerasArchiveContract(FormatContract):
    format_name = "keras"

    @pytest.fixture(autouse=True)
    def _files(self, tf_files: Any) -> None:
        self.files = tf_files

    def samples(self, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
        for model in MODELS:
            yield f"{model}.keras", self.files.path(f"{model}.keras").read_bytes()

    def other_format_sample(self, tmp_path: Path) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("notes.txt", "not a model")
        return buffer.getvalue()


def read(tf_files: Any, model: str) -> tuple[bytes, dict[str, Tensor]]:
    name = f"{model}.keras"
    return read_checkpoint(KerasArchiveFormat(), tf_files.path(name).read_bytes(), name)


def test_parameters_match_the_weights_file(tf_files: Any) -> None:
    _, from_archive = read(tf_files, "transformer_bf16")
    name = "transformer_bf16.weights.h5"
    _, from_h5 = read_checkpoint(KerasH5Format(), tf_files.path(name).read_bytes(), name)
    assert {k: (t.dtype, t.shape, t.sha256()) for k, t in from_archive.items()} == {
        k: (t.dtype, t.shape, t.sha256()) for k, t in from_h5.items()
    }


@pytest.mark.parametrize("model", ["cnn", "transformer_f16"])
def test_changed_tensors_load_in_keras(tf_files: Any, tmp_path: Path, model: str) -> None:
    skeleton, tensors = read(tf_files, model)
    name = "layers/dense/vars/1"
    bias = tensors[name].numpy().copy()
    bias[:] = 3
    tensors[name] = Tensor.from_numpy(bias)
    target = tmp_path / "changed.keras"
    target.write_bytes(write_checkpoint(KerasArchiveFormat(), skeleton, tensors))
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
    restored = tf_files.load_model(target)
    expected = tf_files.weights[model]
    assert sum(1 for a, b in zip(restored, expected, strict=True) if a.tobytes() != b.tobytes()) == 1
    assert any(r.shape == bias.shape and np.array_equal(r, bias) for r in restored)


def test_unchanged_archive_loads_in_keras(tf_files: Any, tmp_path: Path) -> None:
    skeleton, tensors = read(tf_files, "transformer_bf16")
    target = tmp_path / "same.keras"
    target.write_bytes(write_checkpoint(KerasArchiveFormat(), skeleton, tensors))
    assert tf_files.bits(tf_files.load_model(target)) == tf_files.bits(tf_files.weights["transformer_bf16"])


def test_changed_shape_gives_a_valid_archive(tf_files: Any, tmp_path: Path) -> None:
    skeleton, _ = read(tf_files, "cnn")
    _, wide = read(tf_files, "cnn_wide")
    target = tmp_path / "wide.keras"
    target.write_bytes(write_checkpoint(KerasArchiveFormat(), skeleton, wide))
    original = zipfile.ZipFile(tf_files.path("cnn.keras"))
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == original.namelist()
        assert archive.read("config.json") == original.read("config.json")
        with archive.open("model.weights.h5") as member, h5py.File(io.BytesIO(member.read())) as h5:
            assert h5["layers/dense/vars/0"].shape == (144, 6)
            assert np.array_equal(h5["layers/dense/vars/0"][()], wide["layers/dense/vars/0"].numpy())


def test_compressed_weights_member_is_a_clear_error(tf_files: Any) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(tf_files.path("cnn.keras")) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info), compress_type=zipfile.ZIP_DEFLATED)
    with pytest.raises(FormatError, match=r"packed\.keras: model\.weights\.h5 is compressed"):
        read_checkpoint(KerasArchiveFormat(), buffer.getvalue(), "packed.keras")


def test_weights_file_named_like_an_archive_is_rejected(tf_files: Any) -> None:
    with pytest.raises(FormatError, match=r"x\.keras: not a \.keras archive"):
        read_checkpoint(KerasArchiveFormat(), tf_files.path("cnn.weights.h5").read_bytes(), "x.keras")
