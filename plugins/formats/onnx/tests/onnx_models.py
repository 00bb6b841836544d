"""Real ONNX models for the tests, written by torch's exporter and by onnx.helper."""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper


class SmallCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3)
        self.norm = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


CNN_INPUT = (1, 3, 16, 16)
TRANSFORMER_INPUT = (1, 5, 32)


def cnn_module() -> SmallCNN:
    torch.manual_seed(0)
    model = SmallCNN().eval()
    with torch.no_grad():
        model.norm.running_mean.uniform_(-0.5, 0.5)
        model.norm.running_var.uniform_(0.5, 1.5)
    return model


def transformer_module() -> torch.nn.Module:
    torch.manual_seed(1)
    layer = torch.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    with torch.no_grad():  # the layers start as copies; make them differ so none is deduplicated
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


def export(module: torch.nn.Module, shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*shape),), buffer, dynamo=False, input_names=["x"])
    return buffer.getvalue()


@functools.cache
def cnn_bytes() -> bytes:
    return export(cnn_module(), CNN_INPUT)


@functools.cache
def transformer_bytes() -> bytes:
    return export(transformer_module(), TRANSFORMER_INPUT)


def dtype_arrays() -> dict[str, tuple[int, np.ndarray]]:
    """One array per ONNX element type, keyed by the Theta dtype name (bfloat16 as its raw bits)."""
    rng = np.random.default_rng(0)
    return {
        "float32": (TensorProto.FLOAT, rng.standard_normal((3, 4)).astype(np.float32)),
        "float16": (TensorProto.FLOAT16, rng.standard_normal((5,)).astype(np.float16)),
        "bfloat16": (TensorProto.BFLOAT16, np.array([0x3F80, 0xC000, 0x0000, 0x7F80], dtype=np.uint16)),
        "float64": (TensorProto.DOUBLE, rng.standard_normal((2, 2))),
        "int8": (TensorProto.INT8, np.array([-128, -1, 0, 1, 127], dtype=np.int8)),
        "uint8": (TensorProto.UINT8, np.array([0, 7, 255], dtype=np.uint8)),
        "int16": (TensorProto.INT16, np.array([-300, 300], dtype=np.int16)),
        "int32": (TensorProto.INT32, np.array([-(2**31), 2**31 - 1, 5], dtype=np.int32)),
        "int64": (TensorProto.INT64, np.array([-(2**40), 0, 2**62], dtype=np.int64)),
        "uint32": (TensorProto.UINT32, np.array([0, 2**32 - 1], dtype=np.uint32)),
        "uint64": (TensorProto.UINT64, np.array([0, 2**64 - 1], dtype=np.uint64)),
        "bool": (TensorProto.BOOL, np.array([True, False, True])),
        "scalar": (TensorProto.FLOAT, np.array(2.5, dtype=np.float32)),
    }


def dtypes_model(raw: bool) -> bytes:
    """A model whose outputs are its initializers (Identity nodes), one per element type.

    `raw=False` stores the values in the typed fields (float_data, int32_data, ...).
    """
    inits, nodes, outputs = [], [], []
    for name, (code, array) in dtype_arrays().items():
        vals = array if raw else array.reshape(-1)
        if raw:
            tensor = helper.make_tensor(name, code, array.shape, array.tobytes(), raw=True)
        elif code == TensorProto.BFLOAT16:  # make_tensor takes the values as floats and rounds them
            floats = (vals.astype(np.uint32) << 16).view(np.float32)
            tensor = helper.make_tensor(name, code, array.shape, floats.tolist())
        else:
            tensor = helper.make_tensor(name, code, array.shape, vals.tolist())
        inits.append(tensor)
        nodes.append(helper.make_node("Identity", [name], [f"{name}_out"]))
        outputs.append(helper.make_tensor_value_info(f"{name}_out", code, array.shape))
    graph = helper.make_graph(nodes, "dtypes", [], outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="theta-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def if_model() -> bytes:
    """y = x + w_then if cond else x * w_else, with each weight an initializer of its branch graph."""
    w_then = numpy_helper.from_array(np.arange(1, 5, dtype=np.float32), "w_then")
    w_else = numpy_helper.from_array(np.full(4, 3.0, dtype=np.float32), "w_else")
    then_graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w_then"], ["y_then"])], "then", [],
        [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, ["n"])], initializer=[w_then],
    )  # fmt: skip
    else_graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w_else"], ["y_else"])], "else", [],
        [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, ["n"])], initializer=[w_else],
    )  # fmt: skip
    node = helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)
    top = numpy_helper.from_array(np.array([0.5], dtype=np.float32), "bias")
    graph = helper.make_graph(
        [node, helper.make_node("Add", ["y", "bias"], ["z"])], "if_model",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n"])], initializer=[top],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
