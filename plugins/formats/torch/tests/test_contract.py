"""The format contract on real torch.save outputs, and loading the rebuilt files with torch."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_safetensors

from theta.splice import Skeleton
from theta.tensors import Tensor
from theta.testing import FormatContract, read_checkpoint, write_checkpoint
from theta_format_torch import TorchFormat

from .torch_samples import SAMPLES, assert_same, saved, transformer_state


class TestTorchContract(FormatContract):
    format_name = "pytorch"

    def samples(self, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
        for name, build in SAMPLES.items():
            yield name, saved(build())

    def other_format_sample(self, tmp_path: Path) -> bytes:
        return save_safetensors({k: v.contiguous() for k, v in transformer_state().items()})


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_rebuilt_file_loads_with_weights_only(name: str) -> None:
    original = SAMPLES[name]()
    data = saved(original)
    skeleton, tensors = read_checkpoint(TorchFormat(), data, name)
    rebuilt = write_checkpoint(TorchFormat(), skeleton, tensors)
    assert rebuilt == data
    assert zipfile.ZipFile(io.BytesIO(rebuilt)).testzip() is None
    assert_same(original, torch.load(io.BytesIO(rebuilt), weights_only=True))


def test_changed_values_are_loaded_and_crcs_stay_valid() -> None:
    state = transformer_state()
    skeleton, tensors = read_checkpoint(TorchFormat(), saved(state), "m.pt")
    weight = tensors["linear1.weight"].numpy() * 2
    tensors["linear1.weight"] = Tensor.from_numpy(np.ascontiguousarray(weight))
    rebuilt = write_checkpoint(TorchFormat(), skeleton, tensors)
    assert zipfile.ZipFile(io.BytesIO(rebuilt)).testzip() is None
    loaded = torch.load(io.BytesIO(rebuilt), weights_only=True)
    assert torch.equal(loaded["linear1.weight"], state["linear1.weight"] * 2)
    assert torch.equal(loaded["linear2.weight"], state["linear2.weight"])
    assert saved(state) != rebuilt


def test_skeleton_changes_only_in_the_serialization_id_when_values_change() -> None:
    state = transformer_state()
    first, _ = read_checkpoint(TorchFormat(), saved(state), "m.pt")
    state["linear1.bias"] = state["linear1.bias"] + 1
    second, _ = read_checkpoint(TorchFormat(), saved(state), "m.pt")
    before, after = (Skeleton.decode(s, kind="pytorch", path="m.pt") for s in (first, second))
    assert before.regions == after.regions
    assert len(before.body) == len(after.body)
    differing = [i for i, (a, b) in enumerate(zip(before.body, after.body, strict=True)) if a != b]
    assert differing, "torch's serialization id depends on the values"
    # At most the 40-digit id and its member's two CRC-32 fields; the parameters' CRC-32s are zeroed in skeletons.
    assert len(differing) <= 40 + 8


def test_files_written_without_crc32_round_trip() -> None:
    torch.serialization.set_crc32_options(False)
    try:
        data = saved(transformer_state())
    finally:
        torch.serialization.set_crc32_options(True)
    skeleton, tensors = read_checkpoint(TorchFormat(), data, "nocrc.pt")
    assert write_checkpoint(TorchFormat(), skeleton, tensors) == data


def test_file_saved_to_a_path_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(transformer_state(), path)
    data = path.read_bytes()
    assert zipfile.ZipFile(path).namelist()[0] == "model/data.pkl"
    skeleton, tensors = read_checkpoint(TorchFormat(), data, "model.pt")
    assert write_checkpoint(TorchFormat(), skeleton, tensors) == data


def rezipped(data: bytes, pickle_compression: int) -> bytes:
    """`data` rewritten by Python's zipfile: no alignment, no data descriptors, data.pkl maybe deflated."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            compression = pickle_compression if info.filename.endswith("/data.pkl") else zipfile.ZIP_STORED
            target.writestr(info.filename, source.read(info), compress_type=compression)
    return out.getvalue()


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_archives_from_other_zip_writers(compression: int) -> None:
    state = transformer_state()
    data = rezipped(saved(state), compression)
    skeleton, tensors = read_checkpoint(TorchFormat(), data, "m.pt")
    assert write_checkpoint(TorchFormat(), skeleton, tensors) == data
    tensors["linear2.bias"] = Tensor.from_numpy(np.zeros(32, dtype=np.float32))
    changed = write_checkpoint(TorchFormat(), skeleton, tensors)
    assert zipfile.ZipFile(io.BytesIO(changed)).testzip() is None  # CRC-32s in the local headers were rewritten
    assert torch.equal(torch.load(io.BytesIO(changed), weights_only=True)["linear2.bias"], torch.zeros(32))
    tensors["extra"] = Tensor.from_numpy(np.ones(2, dtype=np.float32))  # a new parameter: rebuilt with torch.save
    rebuilt = torch.load(io.BytesIO(write_checkpoint(TorchFormat(), skeleton, tensors)), weights_only=True)
    assert torch.equal(rebuilt["extra"], torch.ones(2)) and torch.equal(
        rebuilt["linear1.weight"], state["linear1.weight"]
    )
