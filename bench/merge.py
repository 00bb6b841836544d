"""Merging two branches of a checkpoint in which every tensor changed on both sides, against a
Git LFS checkout of that checkpoint, in one run.

    .venv/bin/python bench/merge.py                        # 1 GiB, ties with density 0.2
    .venv/bin/python bench/merge.py --size 64 --repeat 1   # a quick check

A synthetic float32 safetensors checkpoint of `--size` MiB (about 100 tensors) is committed
with Theta; branch `theirs` and then `main` each change every element of every tensor (two
independent fine-tunes), and the merge policy says `ties` with `--density` for every
parameter. `git merge --no-edit theirs` is timed: the driver (three versions of each tensor
read, merged, stored dense or as an update) and git's checkout of the merged file through the
filter. The same checkpoint is committed in a Git LFS repository and `git checkout` of it is
timed CHECKOUTS times (base and ours in turns, each on a settled index after `sync`). The
driver reports its own time and peak RSS (THETA_TRACE=1).

Targets (issue: merging models): the merge at most 2x the Git LFS checkout; the driver's peak
RSS at most 300 MiB plus 4x the largest tensor. Times are wall seconds, the median (and the
range) over `--repeat` runs in fresh repositories. Writes bench/results/merge.md (or `--out`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from common import Workspace, drop_page_cache_hint, markdown_table, mib, publish
from synthetic import make_model, write

MODEL = "model.safetensors"
DRIVER = re.compile(r"merge driver \S+ took ([\d.]+)s, peak RSS (\d+) MiB")


def fine_tune(model: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Every element of every tensor moved a little."""
    rng = np.random.default_rng(seed)
    return {
        k: (v + rng.standard_normal(v.shape, dtype=np.float32) * 0.002).astype(np.float32) for k, v in model.items()
    }


def checkpoints(root: Path, size_mib: int) -> tuple[Path, Path, Path, int]:
    base = make_model(size_mib * 2**20)
    largest = max(v.nbytes for v in base.values())
    paths = (root / "base.safetensors", root / "ours.safetensors", root / "theirs.safetensors")
    write(base, paths[0])
    write(fine_tune(base, 1), paths[1])
    write(fine_tune(base, 2), paths[2])
    return (*paths, largest)


def commit(ws: Workspace, source: Path, message: str) -> None:
    shutil.copyfile(source, ws.work / MODEL)
    ws.git("add", MODEL)
    ws.git("commit", "-q", "-m", message)


CHECKOUTS = 3  # git-lfs checkouts per run, base and ours in turns: one alone moves by 2x here


def lfs_checkouts(root: Path, base: Path, ours: Path) -> list[float]:
    ws = Workspace(root, "lfs")
    commit(ws, base, "base")
    commit(ws, ours, "ours")
    seconds = []
    for rev in ("HEAD~1" if i % 2 == 0 else "main" for i in range(CHECKOUTS)):
        ws.settle()
        drop_page_cache_hint()
        seconds.append(ws.git("checkout", "-q", rev))
    ws.cleanup()
    return seconds


def theta_merge(root: Path, base: Path, ours: Path, theirs: Path, density: float) -> dict[str, float]:
    ws = Workspace(root, "theta")
    (ws.work / ".theta").mkdir()
    policy = f'version = 1\n[[rules]]\nparams = ["*"]\nstrategy = "ties"\noptions = {{ density = {density} }}\n'
    (ws.work / ".theta" / "merge-policy.toml").write_text(policy)
    ws.git("add", ".theta/merge-policy.toml")
    commit(ws, base, "base")
    ws.git("checkout", "-q", "-b", "theirs")
    commit(ws, theirs, "theirs")
    ws.git("checkout", "-q", "main")
    commit(ws, ours, "ours")
    ws.settle()
    drop_page_cache_hint()
    start = time.perf_counter()
    proc = subprocess.run(
        ["git", "merge", "--no-edit", "theirs"], cwd=ws.work, env=ws.env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"git merge failed:\n{proc.stderr}")
    found = DRIVER.search(proc.stderr)
    if found is None:
        raise RuntimeError(f"the merge driver reported no figures:\n{proc.stderr}")
    ws.cleanup()
    return {"merge": seconds, "driver": float(found.group(1)), "peak": float(found.group(2))}


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="checkpoint size in MiB (default 1024)")
    parser.add_argument("--density", type=float, default=0.2, help="ties density (default 0.2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "merge.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="theta-bench-merge-") as tmp:
        root = Path(tmp)
        base, ours, theirs, largest = checkpoints(root, args.size)
        size = base.stat().st_size
        checkouts, merges = [], []
        for run in range(args.repeat):
            checkouts += lfs_checkouts(root / f"lfs{run}", base, ours)
            merges.append(theta_merge(root / f"theta{run}", base, ours, theirs, args.density))
    merge_times, driver_times = [m["merge"] for m in merges], [m["driver"] for m in merges]
    checkout, merge, driver = (statistics.median(t) for t in (checkouts, merge_times, driver_times))
    peak = max(m["peak"] for m in merges)
    budget = 300 + 4 * largest / 2**20
    rows = [
        ["git-lfs checkout of the checkpoint", f"{checkout:.2f}", spread(checkouts), "", ""],
        [f"git merge (ties, density {args.density})", f"{merge:.2f}", spread(merge_times),
         f"{merge / checkout:.2f}x (target <= 2x)", ""],
        ["  of which the merge driver", f"{driver:.2f}", spread(driver_times), "",
         f"{peak:.0f} MiB (budget {budget:.0f} MiB)"],
    ]  # fmt: skip
    table = markdown_table(["step", "seconds (median)", "range", "vs checkout", "driver peak RSS"], rows)
    report = (
        f"# Merge benchmark\n\nCheckpoint {mib(size)}, largest tensor {mib(largest)}, every tensor changed on both"
        f" sides; {args.repeat} run(s), each {CHECKOUTS} git-lfs checkouts and one merge.\n\n{table}\n"
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
