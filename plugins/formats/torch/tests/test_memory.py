"""Reading needs no torch and holds one tensor at a time; large files round trip."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

MEASURE = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    from theta.formats import SNIFF_BYTES, Layout, Source, TensorInfo
    from theta_format_torch import TorchFormat

    path, out, spool, keep = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "keep"
    fmt = TorchFormat()
    with path.open("rb", buffering=0) as stream:
        head = stream.read(SNIFF_BYTES)
        source = Source(path.name, stream, head, spool_dir=spool)
        checkpoint = fmt.read(source)
        kept = {}
        for name, tensor in checkpoint.parameters:
            hashlib.sha256(tensor.data).hexdigest()
            if keep:
                kept[name] = tensor
        if keep:
            layout = Layout(
                skeleton=checkpoint.skeleton,
                parameters={n: TensorInfo(dtype=t.dtype, shape=t.shape) for n, t in kept.items()},
                load=kept.__getitem__,
            )
            with out.open("wb") as sink:
                fmt.write(layout, sink)
        source.close()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
    status = Path("/proc/self/status").read_text()
    peak_kib = int(status.split("VmHWM:")[1].split()[0])
    print(peak_kib * 1024, "torch" in sys.modules)
    """
)


def measure(checkpoint: Path, tmp_path: Path, keep: bool = True) -> tuple[int, bool, Path]:
    out = tmp_path / "rebuilt.pt"
    spool = tmp_path / "spool"
    spool.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(checkpoint), str(out), str(spool), "keep" if keep else "stream"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    peak, imported = result.stdout.split()
    assert not list(spool.iterdir()), "the spooled copy is removed"
    return int(peak), imported == "True", out


def test_reading_and_splicing_do_not_import_torch(tmp_path: Path) -> None:
    checkpoint = tmp_path / "small.pt"
    torch.save({"w": torch.ones(8, 8), "step": 3}, checkpoint)
    _, imported, out = measure(checkpoint, tmp_path)
    assert not imported
    assert out.read_bytes() == checkpoint.read_bytes()


BASELINE = 120 * 1024 * 1024  # interpreter, NumPy and the kernel
LARGEST = 32 * 1024 * 1024


@pytest.fixture
def large_checkpoint(tmp_path: Path) -> Path:
    checkpoint = tmp_path / "large.pt"
    generator = torch.Generator().manual_seed(0)
    state = {f"layer{i}.weight": torch.randn(2048, 4096, generator=generator) for i in range(8)}  # 8 x 32 MiB
    state["layer0.bias"] = state["layer0.weight"][0]  # a view into a large storage
    torch.save(state, checkpoint)
    return checkpoint


@pytest.mark.slow
def test_reading_holds_one_tensor_at_a_time_not_the_checkpoint(large_checkpoint: Path, tmp_path: Path) -> None:
    # The clean reads each tensor, hashes and stores it, and lets it go: memory follows the
    # largest tensor. (A memory map of the spool kept every page read resident: 256 MiB here.)
    peak, _, _ = measure(large_checkpoint, tmp_path, keep=False)
    assert peak < BASELINE + 3 * LARGEST, f"peak RSS {peak / 2**20:.0f} MiB"


@pytest.mark.slow
def test_large_checkpoint_round_trips_within_memory_budget(large_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = large_checkpoint
    size = checkpoint.stat().st_size
    peak, imported, out = measure(checkpoint, tmp_path)
    assert not imported
    assert out.read_bytes() == checkpoint.read_bytes()
    assert peak < 1.3 * size + BASELINE, f"peak RSS {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"
