"""Files that must be refused with a clear FormatError, and never executed."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_safetensors

from theta.errors import FormatError
from theta.formats import SNIFF_BYTES
from theta.testing import read_checkpoint
from theta_format_torch import TorchFormat

from .torch_samples import saved, transformer_state


class RunsCommand:
    """Pickles as a call of os.system, the way a malicious checkpoint does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


def with_pickle(data: bytes, payload: bytes) -> bytes:
    """`data` (a torch.save archive) with its data.pkl replaced by `payload`, member order kept."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            body = payload if info.filename.endswith("/data.pkl") else source.read(info)
            target.writestr(info.filename, body)
    return out.getvalue()


def malicious_pickles(marker: Path) -> dict[str, bytes]:
    command = f"touch {marker}"
    quoted = command.encode()
    return {
        "reduce": pickle.dumps({"w": 1, "hook": RunsCommand(command)}, protocol=2),
        "global-os": b"\x80\x02cos\nsystem\nX" + len(quoted).to_bytes(4, "little") + quoted + b"\x85R.",
        "stack-global": pickle.dumps(RunsCommand(command), protocol=4),
        "builtins-eval": b"\x80\x02c__builtin__\neval\nX" + len(b"1").to_bytes(4, "little") + b"1\x85R.",
    }


@pytest.mark.parametrize("kind", ["reduce", "global-os", "stack-global", "builtins-eval"])
def test_code_in_the_pickle_is_refused_and_never_run(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    crafted = with_pickle(saved(transformer_state()), malicious_pickles(marker)[kind])
    fmt = TorchFormat()
    assert fmt.sniff(crafted[:SNIFF_BYTES])
    with pytest.raises(FormatError, match=r"evil\.pt: refused: data\.pkl calls .*never runs code"):
        read_checkpoint(fmt, crafted, "evil.pt")
    assert not marker.exists()


def test_crafted_file_is_a_real_attack_that_torch_refuses_too(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    crafted = with_pickle(saved({"w": torch.ones(2)}), malicious_pickles(marker)["reduce"])
    with pytest.raises(pickle.UnpicklingError, match="system"):
        torch.load(io.BytesIO(crafted), weights_only=True)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_unsupported_tensor_kinds_are_named() -> None:
    data = saved({"q": torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.qint8)})
    with pytest.raises(
        FormatError, match=r"q\.pt: refused: .*_rebuild_qtensor \(quantized tensors are not supported\)"
    ):
        read_checkpoint(TorchFormat(), data, "q.pt")


def test_legacy_file_says_to_resave() -> None:
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    assert TorchFormat().sniff(data[:SNIFF_BYTES])
    with pytest.raises(FormatError, match=r"old\.pt: this is a legacy .*save it again with torch.save"):
        read_checkpoint(TorchFormat(), data, "old.pt")


def test_safetensors_under_a_pt_name() -> None:
    data = save_safetensors({"w": torch.ones(3)})
    assert not TorchFormat().sniff(data[:SNIFF_BYTES])
    with pytest.raises(FormatError, match=r"model\.pt: not a PyTorch checkpoint"):
        read_checkpoint(TorchFormat(), data, "model.pt")


def test_other_bin_files_are_not_claimed() -> None:
    fmt = TorchFormat()
    assert not fmt.sniff(os.urandom(SNIFF_BYTES))
    assert not fmt.sniff(b"")
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert not fmt.sniff(plain.getvalue()[:SNIFF_BYTES])
    with pytest.raises(FormatError, match=r"data\.bin: a ZIP archive but not a torch\.save checkpoint"):
        read_checkpoint(fmt, plain.getvalue(), "data.bin")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_archive_is_explained(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buffer)
    with pytest.raises(FormatError, match=r"scripted\.pt: this is a TorchScript archive"):
        read_checkpoint(TorchFormat(), buffer.getvalue(), "scripted.pt")


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_truncation_anywhere_is_a_format_error(cut: float) -> None:
    data = saved(transformer_state())
    with pytest.raises(FormatError, match=r"cut\.pt: "):
        read_checkpoint(TorchFormat(), data[: int(len(data) * cut)], "cut.pt")


def test_empty_file_is_a_format_error() -> None:
    with pytest.raises(FormatError, match=r"empty\.pt: not a PyTorch checkpoint"):
        read_checkpoint(TorchFormat(), b"", "empty.pt")


def test_record_size_that_lies_is_refused() -> None:
    data = saved({"w": torch.ones(4)})
    payload = zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl")
    lying = payload.replace(b"K\x04t", b"K\x05t", 1)  # the storage's element count: 4 -> 5
    assert lying != payload
    with pytest.raises(FormatError, match=r"lies\.pt: parameter 'w' \(storage data/0\): the record holds 16 bytes"):
        read_checkpoint(TorchFormat(), with_pickle(data, lying), "lies.pt")
