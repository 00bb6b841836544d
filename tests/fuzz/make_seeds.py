"""Write the valid seed checkpoints of the fuzz tests, one small file per format, with the real frameworks.

Run once (`python tests/fuzz/make_seeds.py`); the files are kept in tests/fuzz/corpus/seed-*, so
the fuzz run itself imports no framework.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

CORPUS = Path(__file__).resolve().parent / "corpus"


def safetensors_seed() -> bytes:
    from safetensors.numpy import save

    rng = np.random.default_rng(0)
    return save({"w": rng.standard_normal((3, 4)).astype(np.float32), "b": np.zeros(4, np.float16)})


def torch_seed() -> bytes:
    import torch

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save({"w": torch.randn(3, 4), "b": torch.zeros(4, dtype=torch.float16)}, buffer)
    return buffer.getvalue()


def onnx_seed() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(3, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Add", ["y", "b"], ["z"])],
        "seed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3])],
        initializer=[weight, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def npz_seed() -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(buffer, w=rng.standard_normal((3, 4)).astype(np.float32), b=np.zeros(4, np.float16))
    return buffer.getvalue()


def tensorflow_seeds() -> dict[str, bytes]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model.save(root / "m.keras")
        model.save_weights(root / "m.weights.h5")
        tf.train.Checkpoint(v=tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))).write(str(root / "ckpt"))
        found["seed.keras"] = (root / "m.keras").read_bytes()
        found["seed.weights.h5"] = (root / "m.weights.h5").read_bytes()
        found["seed-tf.index"] = (root / "ckpt.index").read_bytes()
        found["seed-tf.data-00000-of-00001"] = (root / "ckpt.data-00000-of-00001").read_bytes()
    return found


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    seeds = {"seed.safetensors": safetensors_seed(), "seed.pt": torch_seed(), "seed.onnx": onnx_seed()}
    seeds["seed.npz"] = npz_seed()
    seeds.update(tensorflow_seeds())
    for name, data in seeds.items():
        (CORPUS / name).write_bytes(data)


if __name__ == "__main__":
    main()
