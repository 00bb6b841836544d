"""Theta against plain Git LFS on the same safetensors checkpoints, in one run.

    make bench                       # 256 MiB and 1 GiB, writes bench/results/kernel.md
    .venv/bin/python bench/run.py --sizes 256 --repeat 3

For each size: `git add` of v1; `git add` of v2 in which 2% of the tensors changed, and
the bytes of new objects it cost; checkout of v1 and of v2; a fresh clone from a bare
remote (file://). Times are wall seconds of the git command, the median of `--repeat` runs
in fresh repositories (the two tools alternate which goes first); the ratio is Theta / Git LFS.
Peak memory is the Theta filter process's own peak RSS (it reports it with THETA_TRACE=1).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np
from common import Workspace, markdown_table, mib
from synthetic import make_model, write

MODEL = "model.safetensors"


def change_two_percent(model: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    changed = dict(model)
    matrices = [n for n, a in model.items() if a.ndim == 2]
    count = max(1, round(0.02 * len(model)))
    for name in matrices[1 : 1 + count]:
        changed[name] = model[name] + np.float32(0.001)
    return changed


def measure(tool: str, root: Path, v1: Path, v2: Path) -> dict[str, float]:
    ws = Workspace(root / tool, tool)
    r: dict[str, float] = {}
    shutil.copyfile(v1, ws.work / MODEL)
    r["add v1"] = ws.git("add", MODEL)
    ws.git("commit", "-q", "-m", "v1")
    bytes_v1 = ws.lfs_bytes()
    shutil.copyfile(v2, ws.work / MODEL)
    r["add v2"] = ws.git("add", MODEL)
    ws.git("commit", "-q", "-m", "v2")
    r["new bytes v2"] = ws.lfs_bytes() - bytes_v1
    ws.settle()
    r["checkout v1"] = ws.git("checkout", "-q", "HEAD~1")
    ws.settle()
    r["checkout v2"] = ws.git("checkout", "-q", "main")
    ws.git("push", "-q", "origin", "main")
    r["clone"] = ws.clone("clone")
    r["peak MiB"] = max(ws.peaks) if ws.peaks else 0
    ws.cleanup()
    return r


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024], help="checkpoint sizes in MiB")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "kernel.md")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the median is reported")
    args = parser.parse_args()
    sections = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="theta-bench-") as tmp:
            root = Path(tmp)
            model = make_model(size * 2**20)
            v1, v2 = root / "v1.safetensors", root / "v2.safetensors"
            write(model, v1)
            changed = change_two_percent(model)
            write(changed, v2)
            largest = max(a.nbytes for a in model.values())
            del model, changed
            runs: dict[str, list[dict[str, float]]] = {"lfs": [], "theta": []}
            for i in range(args.repeat):
                for tool in ("lfs", "theta") if i % 2 == 0 else ("theta", "lfs"):
                    runs[tool].append(measure(tool, root / f"run{i}", v1, v2))
            lfs, theta = median_of(runs["lfs"]), median_of(runs["theta"])
            file_size = v1.stat().st_size
        rows = []
        for key in ("add v1", "add v2", "checkout v1", "checkout v2", "clone"):
            rows.append([key, f"{lfs[key]:.2f}", f"{theta[key]:.2f}", f"{theta[key] / lfs[key]:.2f}x"])
        rows.append([
            "new objects for v2", f"{mib(lfs['new bytes v2'])} ({lfs['new bytes v2'] / file_size:.0%})",
            f"{mib(theta['new bytes v2'])} ({theta['new bytes v2'] / file_size:.1%})",
            f"{theta['new bytes v2'] / max(lfs['new bytes v2'], 1):.3f}x",
        ])  # fmt: skip
        budget = 300 + 2 * largest / 2**20
        rows.append(["filter peak RSS", "-", f"{theta['peak MiB']:.0f} MiB", f"budget {budget:.0f} MiB"])
        title = f"### {mib(file_size)} checkpoint, {len(make_shapes(size))} tensors, largest {mib(largest)}"
        sections.append(
            title + "\n\n" + markdown_table(["step (seconds)", "git-lfs", "theta", "theta / git-lfs"], rows)
        )
        print(sections[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n\n".join(sections) + "\n")


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def make_shapes(size: int) -> dict[str, tuple[int, ...]]:
    from synthetic import transformer_shapes

    return transformer_shapes(size * 2**20)


if __name__ == "__main__":
    main()
