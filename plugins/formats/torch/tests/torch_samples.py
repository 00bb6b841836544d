"""Real `torch.save` outputs used by the tests."""

from __future__ import annotations

import io
from typing import Any

import torch


def saved(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def cnn_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 4, 3),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 10),
    )
    return model.state_dict()


def transformer_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    layer = torch.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True)
    return layer.state_dict()


def every_dtype() -> dict[str, torch.Tensor]:
    torch.manual_seed(2)
    base = torch.randn(4, 5)
    return {
        "float32": base,
        "float16": base.half(),
        "bfloat16": base.bfloat16(),
        "float64": base.double(),
        "int8": torch.arange(-10, 10, dtype=torch.int8).reshape(4, 5),
        "int64": torch.arange(20, dtype=torch.int64),
        "bool": base > 0,
        "uint8": torch.arange(6, dtype=torch.uint8),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }


def nested_training_state() -> dict[str, Any]:
    torch.manual_seed(3)
    model = torch.nn.Linear(6, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 6)).sum().backward()
    optimizer.step()
    return {
        "epoch": 7,
        "best_loss": 0.125,
        "note": "warm restart",
        "config": {"layers": [6, 3], "dropout": 0.1, "name": "linear", "flags": (True, None), "raw": b"\x00\x01"},
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }


def shared_storage() -> dict[str, Any]:
    torch.manual_seed(4)
    embedding = torch.randn(10, 4)
    block = torch.randn(6, 8)
    return {
        "embed.weight": embedding,
        "lm_head.weight": embedding,  # tied: the same tensor twice
        "block": block,
        "block_top": block[:3],  # a slice of another tensor's storage
        "block_t": block.t(),  # a transposed view
        "window": torch.arange(20.0)[5:9],  # a slice whose storage nobody covers
    }


def parameters() -> dict[str, Any]:
    torch.manual_seed(5)
    return {
        "w": torch.nn.Parameter(torch.randn(3, 3)),
        "frozen": torch.nn.Parameter(torch.randn(2), requires_grad=False),
    }


SAMPLES = {
    "cnn.pt": cnn_state,
    "transformer.pth": transformer_state,
    "dtypes.pt": every_dtype,
    "training.ckpt": nested_training_state,
    "shared.bin": shared_storage,
    "parameters.pt": parameters,
}


def assert_same(expected: Any, actual: Any, where: str = "root") -> None:
    """Equal tensors (dtype, shape, values, sharing is not checked here) and equal plain values."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), where
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, where
        assert torch.equal(actual, expected), where
        assert type(actual) is type(expected), where
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), where
        for key in expected:
            assert_same(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), where
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_same(e, a, f"{where}.{index}")
    else:
        assert actual == expected and type(actual) is type(expected), where
