"""Diffs and partial loads against a Git LFS checkout, in one run.

    .venv/bin/python bench/diff.py                         # 1 GiB diff; loads at 256 MiB and 1 GiB
    .venv/bin/python bench/diff.py --diff-size 64 --load-sizes 16 64 --repeat 1   # a quick check

Diff: two versions of a safetensors checkpoint of `--diff-size` MiB in which 2% of the
tensors changed, committed with Theta; `git theta diff HEAD~1 HEAD` and `git diff HEAD~1
HEAD` are timed against `git checkout` of one version in a Git LFS repository holding the
same two versions (the target: at most 0.25x).

Load: for each of `--load-sizes`, the same two versions pushed to a bare remote, then in a
fresh `--no-checkout` clone `theta.load(path, params=[one changed tensor])` (in its own
Python process, imports included) is timed, and the bytes it fetched are compared with that
tensor's chain and with the checkpoint.

Times are wall seconds, the median of `--repeat` runs in fresh repositories. Writes
bench/results/diff.md (or `--out`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Workspace, markdown_table, mib
from run import change_two_percent
from synthetic import make_model, write

MODEL = "model.safetensors"


def versions(root: Path, size_mib: int) -> tuple[Path, Path, str, int]:
    """v1 and v2 files, the name of a tensor v2 changed, and the file size."""
    model = make_model(size_mib * 2**20)
    changed = change_two_percent(model)
    name = next(n for n in model if changed[n] is not model[n])
    v1, v2 = root / "v1.safetensors", root / "v2.safetensors"
    write(model, v1)
    write(changed, v2)
    return v1, v2, name, v1.stat().st_size


def two_commits(ws: Workspace, v1: Path, v2: Path) -> None:
    for i, version in enumerate((v1, v2), start=1):
        shutil.copyfile(version, ws.work / MODEL)
        ws.git("add", MODEL)
        ws.git("commit", "-q", "-m", f"v{i}")


def measure_diff(root: Path, v1: Path, v2: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    lfs = Workspace(root / "lfs", "lfs")
    two_commits(lfs, v1, v2)
    lfs.settle()
    out["git-lfs checkout of v1"] = lfs.git("checkout", "-q", "HEAD~1")
    lfs.cleanup()
    theta = Workspace(root / "theta", "theta")
    two_commits(theta, v1, v2)
    out["git theta diff HEAD~1 HEAD"] = theta.run("git-theta", "diff", "HEAD~1", "HEAD")
    out["git diff HEAD~1 HEAD"] = theta.git("diff", "HEAD~1", "HEAD")
    out["git theta diff HEAD~1 HEAD --json"] = theta.run("git-theta", "diff", "--json", "HEAD~1", "HEAD")
    theta.cleanup()
    return out


LOAD = """
import sys, time
start = time.perf_counter()
import theta
theta.load(sys.argv[1], params=[sys.argv[2]], repo=sys.argv[3])
print(time.perf_counter() - start)
"""


def measure_load(root: Path, v1: Path, v2: Path, name: str) -> dict[str, float]:
    ws = Workspace(root / "theta", "theta")
    two_commits(ws, v1, v2)
    ws.git("push", "-q", "origin", "main")
    clone = root / "clone"
    ws.git("clone", "-q", "--no-checkout", ws.remote.as_uri(), str(clone), cwd=root)
    metadata = json.loads(subprocess.run(["git", "cat-file", "blob", f"HEAD:{MODEL}"], cwd=clone, env=ws.env,
                                         capture_output=True, check=True).stdout)  # fmt: skip
    steps = metadata["parameters"][name]["steps"]
    chain = sum(o["size"] for s in steps for o in s["objects"].values())
    proc = subprocess.run([sys.executable, "-c", LOAD, MODEL, name, str(clone)], env=ws.env, capture_output=True,
                          text=True, cwd=root)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"theta.load failed:\n{proc.stderr}")
    fetched = ws.lfs_bytes(clone / ".git")
    ws.cleanup()
    shutil.rmtree(clone, ignore_errors=True)
    return {"seconds": float(proc.stdout.strip()), "fetched": fetched, "chain": chain, "steps": len(steps)}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--diff-size", type=int, default=1024, help="checkpoint size for the diff, MiB")
    parser.add_argument("--load-sizes", type=int, nargs="+", default=[256, 1024], help="checkpoint sizes for load, MiB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "diff.md")
    args = parser.parse_args()
    sections = []
    with tempfile.TemporaryDirectory(prefix="theta-bench-diff-") as tmp:
        root = Path(tmp)
        v1, v2, _, size = versions(root, args.diff_size)
        diff = median_of([measure_diff(root / f"diff{i}", v1, v2) for i in range(args.repeat)])
        checkout = diff["git-lfs checkout of v1"]
        rows = [[step, f"{seconds:.2f}", f"{seconds / checkout:.2f}x"] for step, seconds in diff.items()]
        sections.append(
            f"### Diff of two versions of a {mib(size)} checkpoint, 2% of the tensors changed\n\n"
            + markdown_table(["step (seconds)", "time", "vs git-lfs checkout"], rows)
        )
        print(sections[-1], flush=True)
        v1.unlink()
        v2.unlink()
    rows = []
    for load_size in args.load_sizes:
        with tempfile.TemporaryDirectory(prefix="theta-bench-load-") as tmp:
            root = Path(tmp)
            v1, v2, name, size = versions(root, load_size)
            r = median_of([measure_load(root / f"load{i}", v1, v2, name) for i in range(args.repeat)])
        rows.append([
            mib(size), name, f"{r['steps']:.0f}", mib(r["chain"]), f"{r['seconds']:.2f}", mib(r["fetched"]),
            f"{r['fetched'] / size:.1%}", f"{r['fetched'] / max(r['chain'], 1):.2f}x",
        ])  # fmt: skip
    header = ["checkpoint", "tensor", "chain steps", "chain bytes", "seconds", "fetched", "of checkpoint", "of chain"]
    sections.append("### theta.load of one tensor from a fresh --no-checkout clone\n\n" + markdown_table(header, rows))
    print(sections[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
