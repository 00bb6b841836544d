from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save as save_numpy
from safetensors.torch import save as save_torch

from theta.errors import FormatError
from theta.tensors import Tensor
from theta.testing import FormatContract, read_checkpoint, write_checkpoint
from theta_format_safetensors.format import SafetensorsFormat


def transformer_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True)
    return {k: v.contiguous() for k, v in layer.state_dict().items()}


class TestSafetensorsContract(FormatContract):
    format_name = "safetensors"

    def samples(self, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
        state = transformer_state()
        yield "float32.safetensors", save_torch(state, metadata={"epoch": "3"})
        yield "float16.safetensors", save_torch({k: v.half() for k, v in state.items()})
        yield "bfloat16.safetensors", save_torch({k: v.bfloat16() for k, v in state.items()})
        yield "mixed.safetensors", save_torch({
            "int8": torch.arange(-5, 5, dtype=torch.int8),
            "int64": torch.arange(7, dtype=torch.int64),
            "bool": torch.tensor([True, False, True]),
            "scalar": torch.tensor(1.5),
            "empty": torch.zeros(0, 4),
        })  # fmt: skip

    def other_format_sample(self, tmp_path: Path) -> bytes:
        import io

        buffer = io.BytesIO()
        torch.save(transformer_state(), buffer)
        return buffer.getvalue()


def test_tensor_values_survive() -> None:
    arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4, dtype=np.float64)}
    data = save_numpy(arrays)
    _, tensors = read_checkpoint(SafetensorsFormat(), data, "m.safetensors")
    assert np.array_equal(tensors["w"].numpy(), arrays["w"])
    assert np.array_equal(tensors["b"].numpy(), arrays["b"])


def test_header_that_lies_about_sizes() -> None:
    data = bytearray(save_numpy({"w": np.zeros((4, 4), dtype=np.float32)}))
    text = data.replace(b'"shape":[4,4]', b'"shape":[4,5]')
    with pytest.raises(FormatError, match=r"m\.safetensors: tensor 'w': header lies about sizes"):
        read_checkpoint(SafetensorsFormat(), bytes(text), "m.safetensors")


def test_trailing_data_is_rejected() -> None:
    data = save_numpy({"w": np.zeros(4, dtype=np.float32)}) + b"junk"
    with pytest.raises(FormatError, match="data continues after the last tensor"):
        read_checkpoint(SafetensorsFormat(), data, "m.safetensors")


def test_new_parameters_get_a_fresh_valid_header() -> None:
    fmt = SafetensorsFormat()
    skeleton, tensors = read_checkpoint(fmt, save_numpy({"w": np.ones(3, np.float32)}, metadata={"k": "v"}))
    tensors["extra"] = Tensor.from_numpy(np.arange(5, dtype=np.int32))
    rebuilt = write_checkpoint(fmt, skeleton, tensors)
    import os
    import tempfile

    from safetensors import safe_open

    with tempfile.NamedTemporaryFile(suffix=".safetensors", delete=False) as f:
        f.write(rebuilt)
    try:
        with safe_open(f.name, framework="numpy") as st:
            assert st.metadata() == {"k": "v"}
            assert np.array_equal(st.get_tensor("extra"), np.arange(5, dtype=np.int32))
            assert np.array_equal(st.get_tensor("w"), np.ones(3, np.float32))
    finally:
        os.unlink(f.name)
