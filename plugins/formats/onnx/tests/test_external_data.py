from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import external_data_helper, numpy_helper

from theta.errors import FormatError
from theta.tensors import Tensor
from theta.testing import read_checkpoint, write_checkpoint
from theta_format_onnx.format import OnnxFormat

from .onnx_models import TRANSFORMER_INPUT, if_model, transformer_bytes

FMT = OnnxFormat()


def save_external(folder: Path, data: bytes, size_threshold: int = 0) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load_from_string(data)
    onnx.save_model(model, folder / "model.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=size_threshold)  # fmt: skip
    return folder / "model.onnx", folder / "model.onnx.data"


@pytest.fixture
def in_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working tree as git's filters see it: the current directory is its top."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_data_file_tensors_are_the_parameters(in_repo: Path) -> None:
    onnx_path, data_path = save_external(in_repo / "models", transformer_bytes())
    skeleton, tensors = read_checkpoint(FMT, data_path.read_bytes(), "models/model.onnx.data")
    expected = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(transformer_bytes()).graph.initializer}
    assert list(tensors) == list(expected)
    for name, array in expected.items():
        assert np.array_equal(tensors[name].numpy(), array)
    assert write_checkpoint(FMT, skeleton, tensors) == data_path.read_bytes()
    # The .onnx file itself then holds no tensor data: it round-trips whole, with no parameters.
    model_skeleton, model_tensors = read_checkpoint(FMT, onnx_path.read_bytes(), "models/model.onnx")
    assert model_tensors == {}
    assert write_checkpoint(FMT, model_skeleton, {}) == onnx_path.read_bytes()


def test_changed_external_tensor_is_loaded_by_onnxruntime(in_repo: Path) -> None:
    onnx_path, data_path = save_external(in_repo, transformer_bytes())
    skeleton, tensors = read_checkpoint(FMT, data_path.read_bytes(), "model.onnx.data")
    name = "layers.1.norm2.bias"
    new = tensors[name].numpy() + 0.5
    tensors[name] = Tensor.from_numpy(new)
    data_path.write_bytes(write_checkpoint(FMT, skeleton, tensors))
    loaded = onnx.load(str(onnx_path))
    onnx.checker.check_model(str(onnx_path))
    assert np.array_equal(numpy_helper.to_array(next(t for t in loaded.graph.initializer if t.name == name)), new)
    x = np.random.default_rng(0).standard_normal(TRANSFORMER_INPUT).astype(np.float32)
    (out,) = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    (ref,) = ort.InferenceSession(transformer_bytes(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(out - ref, 0.5, atol=1e-4)  # the last LayerNorm's bias moved every output


def test_small_tensors_inline_and_large_ones_external(in_repo: Path) -> None:
    onnx_path, data_path = save_external(in_repo, transformer_bytes(), size_threshold=1024)
    _, inline = read_checkpoint(FMT, onnx_path.read_bytes(), "model.onnx")
    _, external = read_checkpoint(FMT, data_path.read_bytes(), "model.onnx.data")
    assert inline and external and not set(inline) & set(external)
    assert all(t.nbytes < 1024 for t in inline.values()) and all(t.nbytes >= 1024 for t in external.values())


def test_padding_between_tensors_is_kept(in_repo: Path) -> None:
    model = onnx.load_from_string(if_model())
    blob = bytearray()
    tensors = [*model.graph.initializer]
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                tensors.extend(attribute.g.initializer)
    for t in tensors:  # 64-byte aligned, as loaders that map the file want, with 0xEE filler to see it kept
        blob += b"\xee" * (-len(blob) % 64)
        raw = t.raw_data
        external_data_helper.set_external_data(t, "weights.bin", offset=len(blob), length=len(raw))
        blob += raw
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
    blob += b"trailer"
    onnx.save_model(model, in_repo / "if.onnx")
    (in_repo / "weights.bin").write_bytes(bytes(blob))
    skeleton, params = read_checkpoint(FMT, bytes(blob), "weights.bin")
    assert sorted(params) == ["bias", "w_else", "w_then"]
    assert write_checkpoint(FMT, skeleton, params) == bytes(blob)
    (result,) = ort.InferenceSession(str(in_repo / "if.onnx")).run(
        None, {"cond": np.array(True), "x": np.zeros(4, np.float32)}
    )
    np.testing.assert_array_equal(result, np.arange(1, 5, dtype=np.float32) + 0.5)


def test_data_file_without_its_model_is_a_clear_error(in_repo: Path) -> None:
    onnx_path, data_path = save_external(in_repo, if_model())
    onnx_path.unlink()
    with pytest.raises(FormatError, match=r"model\.onnx\.data: not an ONNX model .* nor an external data file"):
        read_checkpoint(FMT, data_path.read_bytes(), "model.onnx.data")


def test_truncated_data_file_is_a_clear_error(in_repo: Path) -> None:
    _, data_path = save_external(in_repo, transformer_bytes())
    data = data_path.read_bytes()
    with pytest.raises(FormatError, match=r"model.onnx.data \(external data of model.onnx\): file is truncated"):
        read_checkpoint(FMT, data[: len(data) // 2], "model.onnx.data")


def test_reshaped_external_tensor_is_a_clear_error(in_repo: Path) -> None:
    _, data_path = save_external(in_repo, if_model())
    skeleton, tensors = read_checkpoint(FMT, data_path.read_bytes(), "model.onnx.data")
    tensors["w_then"] = Tensor.from_numpy(np.zeros(8, np.float32))
    with pytest.raises(FormatError, match=r"external data of model.onnx: .*\['w_then'\].*save the model again"):
        write_checkpoint(FMT, skeleton, tensors)
