from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator
from safetensors.numpy import save as save_safetensors

from theta.errors import FormatError
from theta.tensors import Tensor
from theta.testing import FormatContract, read_checkpoint, write_checkpoint
from theta_format_onnx.format import OnnxFormat

from .onnx_models import (
    CNN_INPUT,
    TRANSFORMER_INPUT,
    cnn_bytes,
    cnn_module,
    dtype_arrays,
    dtypes_model,
    if_model,
    transformer_bytes,
)

FMT = OnnxFormat()


class TestOnnxContract(FormatContract):
    format_name = "onnx"

    def samples(self, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
        yield "cnn.onnx", cnn_bytes()
        yield "transformer.onnx", transformer_bytes()
        yield "dtypes-raw.onnx", dtypes_model(raw=True)
        yield "dtypes-typed.onnx", dtypes_model(raw=False)
        yield "if.onnx", if_model()

    def other_format_sample(self, tmp_path: Path) -> bytes:
        buffer = io.BytesIO()
        torch.save(cnn_module().state_dict(), buffer)
        return buffer.getvalue()


def run(model: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)


def rebuilt(data: bytes, changes: dict[str, np.ndarray] | None = None) -> bytes:
    skeleton, tensors = read_checkpoint(FMT, data, "model.onnx")
    for name, array in (changes or {}).items():
        tensors[name] = Tensor.from_numpy(array)
    return write_checkpoint(FMT, skeleton, tensors)


def initializer(model: bytes, name: str) -> np.ndarray:
    graph = onnx.load_from_string(model).graph
    return numpy_helper.to_array(next(t for t in graph.initializer if t.name == name))


@pytest.mark.parametrize(("model", "shape"), [(cnn_bytes, CNN_INPUT), (transformer_bytes, TRANSFORMER_INPUT)])
def test_rebuilt_model_checks_and_runs_identically(model, shape) -> None:
    original = model()
    again = rebuilt(original)
    onnx.checker.check_model(onnx.load_from_string(again), full_check=True)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    for before, after in zip(run(original, {"x": x}), run(again, {"x": x}), strict=True):
        assert before.tobytes() == after.tobytes()


def test_changed_tensors_give_the_new_model() -> None:
    module = cnn_module()
    with torch.no_grad():
        module.fc.weight.mul_(-2.0)
        module.fc.bias.add_(1.0)
        module.conv2.bias.zero_()
    changes = {
        "fc.weight": module.fc.weight.detach().numpy(),
        "fc.bias": module.fc.bias.detach().numpy(),
        "conv2.bias": module.conv2.bias.detach().numpy(),
    }
    original = cnn_bytes()
    changed = rebuilt(original, changes)
    assert len(changed) == len(original)
    onnx.checker.check_model(onnx.load_from_string(changed))
    for name, array in changes.items():
        assert np.array_equal(initializer(changed, name), array)
    x = np.random.default_rng(4).standard_normal(CNN_INPUT).astype(np.float32)
    expected = module(torch.from_numpy(x)).detach().numpy()
    (got,) = run(changed, {"x": x})
    (before,) = run(original, {"x": x})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(before, expected)


@pytest.mark.parametrize("raw", [True, False])
def test_dtypes_and_values(raw: bool) -> None:
    _, tensors = read_checkpoint(FMT, dtypes_model(raw=raw), "dtypes.onnx")
    arrays = dtype_arrays()
    assert list(tensors) == list(arrays)
    for name, (_, array) in arrays.items():
        t = tensors[name]
        assert t.shape == array.shape
        assert t.dtype == ("float32" if name == "scalar" else name)
        assert t.numpy().tobytes() == array.tobytes(), name


def test_typed_fields_take_new_values_of_other_encoded_sizes() -> None:
    data = dtypes_model(raw=False)
    changes = {
        "int64": np.array([1, 2, 3], dtype=np.int64),  # 10-byte varints become 1-byte ones
        "int8": np.array([1, 2, 3, 4, 5], dtype=np.int8),
        "uint64": np.array([2**63, 1], dtype=np.uint64),
        "float32": np.full((3, 4), 7.0, dtype=np.float32),
    }
    changed = rebuilt(data, changes)
    model = onnx.load_from_string(changed)
    onnx.checker.check_model(model)
    for name, array in changes.items():
        assert np.array_equal(initializer(changed, name), array), name
    assert model.graph.initializer[0].float_data  # still in the typed field it came in
    evaluator = ReferenceEvaluator(model)
    outputs = dict(zip(evaluator.output_names, evaluator.run(None, {}), strict=True))
    assert np.array_equal(outputs["int64_out"], changes["int64"])
    assert np.array_equal(outputs["bool_out"], dtype_arrays()["bool"][1])


def test_changed_shape_and_dtype_are_re_encoded() -> None:
    data = dtypes_model(raw=False)
    changes = {
        "float32": np.arange(40, dtype=np.float32).reshape(5, 8),  # typed float_data -> raw_data
        "scalar": np.arange(3, dtype=np.float64),  # a scalar (no dims) gains a dimension and a new dtype
        "int16": np.zeros((0,), dtype=np.int16),
    }
    changed = rebuilt(data, changes)
    for name, array in changes.items():
        got = initializer(changed, name)
        assert got.dtype == array.dtype and got.shape == array.shape and np.array_equal(got, array), name
    _, reread = read_checkpoint(FMT, changed, "dtypes.onnx")
    assert reread["scalar"].dtype == "float64" and reread["scalar"].shape == (3,)
    assert np.array_equal(reread["int8"].numpy(), dtype_arrays()["int8"][1])


def test_subgraph_initializers_are_parameters_and_lengths_are_fixed() -> None:
    data = if_model()
    changed = rebuilt(data, {"w_then": np.arange(300, dtype=np.float32), "bias": np.array([0.0], np.float32)})
    onnx.checker.check_model(onnx.load_from_string(changed))
    x = np.ones(300, dtype=np.float32)
    (then,) = run(changed, {"cond": np.array(True), "x": x})
    np.testing.assert_array_equal(then, x + np.arange(300, dtype=np.float32))
    (otherwise,) = run(changed, {"cond": np.array(False), "x": np.ones(4, dtype=np.float32)})
    np.testing.assert_array_equal(otherwise, np.full(4, 3.0, dtype=np.float32))


def test_added_or_dropped_parameter_is_a_clear_error() -> None:
    skeleton, tensors = read_checkpoint(FMT, cnn_bytes(), "cnn.onnx")
    extra = dict(tensors, new=Tensor.from_numpy(np.zeros(2, np.float32)))
    with pytest.raises(FormatError, match=r"new: \['new'\].*cannot be added or dropped"):
        write_checkpoint(FMT, skeleton, extra)
    del tensors["fc.bias"]
    with pytest.raises(FormatError, match=r"missing: \['fc.bias'\]"):
        write_checkpoint(FMT, skeleton, tensors)


def test_initializers_the_format_cannot_version_stay_in_the_skeleton() -> None:
    strings = onnx.helper.make_tensor("labels", onnx.TensorProto.STRING, [2], [b"cat", b"dog"])
    model = onnx.load_from_string(if_model())
    model.graph.initializer.append(strings)
    data = model.SerializeToString()
    skeleton, tensors = read_checkpoint(FMT, data, "strings.onnx")
    assert "labels" not in tensors and b"dog" in skeleton
    assert write_checkpoint(FMT, skeleton, tensors) == data


def test_raw_data_of_the_wrong_size_is_a_clear_error() -> None:
    model = onnx.load_from_string(if_model())
    model.graph.initializer[0].raw_data = b"\x00" * 7
    with pytest.raises(FormatError, match=r"bad.onnx: .*'bias': raw_data holds 7 bytes, but float32 \[1\] needs 4"):
        read_checkpoint(FMT, model.SerializeToString(), "bad.onnx")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x08\x08", b"\x08\x07\x3a\xff\xff\x03abc", b"\x08\x07\x42\x05ab"],
    ids=["empty", "no-graph", "graph-past-end", "opset-past-end"],
)
def test_bad_bytes_are_format_errors(data: bytes) -> None:
    with pytest.raises(FormatError, match=r"broken\.onnx: "):
        read_checkpoint(FMT, data, "broken.onnx")


def test_safetensors_under_an_onnx_name_is_rejected() -> None:
    data = save_safetensors({"w": np.zeros(4, np.float32)})
    assert not FMT.sniff(data)
    with pytest.raises(FormatError, match=r"weights\.onnx: not an ONNX model"):
        read_checkpoint(FMT, data, "weights.onnx")


def test_a_damaged_skeleton_is_a_clear_error() -> None:
    skeleton, tensors = read_checkpoint(FMT, if_model(), "if.onnx")
    with pytest.raises(FormatError, match="not an ONNX skeleton"):
        write_checkpoint(FMT, b"junk" + skeleton, tensors)


def test_transformer_changes_stay_local(tmp_path: Path) -> None:
    original = transformer_bytes()
    skeleton, tensors = read_checkpoint(FMT, original, "t.onnx")
    name = "layers.1.linear2.bias"
    array = tensors[name].numpy() + 1.0
    changed = rebuilt(original, {name: array})
    assert np.array_equal(initializer(changed, name), array)
    diff = np.flatnonzero(np.frombuffer(changed, np.uint8) != np.frombuffer(original, np.uint8))
    assert diff.size and diff[-1] - diff[0] < array.nbytes
    assert skeleton == read_checkpoint(FMT, changed, "t.onnx")[0]


def test_every_truncation_is_a_format_error_or_round_trips() -> None:
    data = if_model()
    for end in range(len(data)):
        try:
            skeleton, tensors = read_checkpoint(FMT, data[:end], "cut.onnx")
        except FormatError as exc:
            assert "cut.onnx" in str(exc)
            continue
        assert write_checkpoint(FMT, skeleton, tensors) == data[:end]


def test_initializers_sharing_a_name_in_two_subgraphs_are_told_apart() -> None:
    model = onnx.load_from_string(if_model())
    for attribute in model.graph.node[0].attribute:
        graph = attribute.g
        graph.initializer[0].name = "w"
        graph.node[0].input[1] = "w"
    data = model.SerializeToString()
    skeleton, tensors = read_checkpoint(FMT, data, "shared.onnx")
    assert sorted(tensors) == ["bias", "w", "w#2"]
    # in file order: onnx.helper writes a node's attributes sorted by name, so else_branch comes first
    assert np.array_equal(tensors["w"].numpy(), np.full(4, 3.0, dtype=np.float32))
    assert np.array_equal(tensors["w#2"].numpy(), np.arange(1, 5, dtype=np.float32))
    assert write_checkpoint(FMT, skeleton, tensors) == data
