"""The everyday commit: Theta against plain Git LFS on every kind of v2, in one run.

    .venv/bin/python bench/commit.py                                   # 256 MiB, 1 GiB, 4 GiB
    .venv/bin/python bench/commit.py --sizes 64 --kinds two full --dtypes float32

A transformer-like safetensors checkpoint (bench/synthetic.py's shapes: embeddings, 12 layers of
4 attention and 2 feed-forward matrices and 2 norms, 98 tensors) is committed as v1, in float32
and in a bfloat16 variant; then v2, one of:

- two        2 tensors changed (0.001 added to two attention matrices);
- scattered  2% of the values of every tensor changed, at scattered places;
- low-rank   a rank-8 change B @ A of every attention matrix (a merged LoRA adapter);
- ia3        the feed-forward matrices scaled per channel (rows of `up`, columns of `down`);
- full       every tensor changed: noise of 1% of each tensor's root mean square on every value
             (a full fine-tune).

bfloat16 versions are the float32 ones rounded, v2 computed from v1's bfloat16 values. For each
size, dtype and kind, both tools in fresh repositories side by side (isolated HOMEs, bare
remotes over file://), each step timed for one tool and then the other: `git add` of v1, then
of v2 (with the bytes each added under .git/lfs/objects), a push, a fresh clone (its seconds
and the bytes it downloaded), then in the clone `git checkout` of v1 (from v2; git-lfs
downloads v1 here), and `--rounds` times v2 (from v1) with v1 again between; each checkout's
file is checked against the version. Every timed command starts after `sync`, and a checkout
on a settled index (`Workspace.settle`). Times are wall seconds of the git command, the median
of the rounds and of `--repeat` runs (the tools alternate which goes first); ratios are
Theta / Git LFS. Memory is the Theta filter process's peak RSS
over every command of the run (THETA_TRACE=1), against 300 MiB plus 3x the largest tensor.
Writes markdown to stdout and bench/results/commit.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import statistics
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from common import Workspace, drop_page_cache_hint, markdown_table, mib
from synthetic import transformer_shapes

MODEL = "model.safetensors"
KINDS = ("two", "scattered", "low-rank", "ia3", "full")
LABELS = {
    "two": "2 tensors changed",
    "scattered": "2% of values, scattered",
    "low-rank": "rank-8 change of the attention matrices",
    "ia3": "IA3 scaling of the feed-forward matrices",
    "full": "every tensor changed (a full fine-tune)",
}
DTYPES = ("float32", "bfloat16")
STEPS = ("add v1", "add v2", "clone", "checkout v1", "checkout v2", "checkout v1 again")
BUDGET_MIB, BUDGET_TENSORS = 300, 3
MOSTLY_UNCHANGED = ("two", "low-rank")  # kinds whose changed tensors are under half the bytes

Tensors = Iterator[tuple[str, np.ndarray]]


# -- the versions, one tensor at a time ---------------------------------------------------------


def v1_tensor(name: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    if len(shape) == 1:
        return np.ones(shape, dtype=np.float32)
    rng = np.random.default_rng([seed, int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)])
    out = rng.standard_normal(shape, dtype=np.float32)
    out *= np.float32(0.02)
    return out


def to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """The values in `dtype`: float32 as they are, bfloat16 rounded to nearest even (as raw uint16 bits)."""
    if dtype == "float32":
        return values
    bits = values.astype(np.float32).view(np.uint32)
    return ((bits + np.uint32(0x7FFF) + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def from_dtype(stored: np.ndarray, dtype: str) -> np.ndarray:
    return stored if dtype == "float32" else (stored.astype(np.uint32) << 16).view(np.float32)


def change(kind: str, name: str, w: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
    """v2 of one tensor (float32 values of v1's stored ones)."""
    if kind == "two":
        return w + np.float32(0.001) if index in (1, 2) else w
    if kind == "scattered":
        flat = w.reshape(-1).copy()
        places = np.flatnonzero(rng.random(flat.size, dtype=np.float32) < 0.02)
        flat[places] *= 1 + np.float32(0.05) * rng.standard_normal(places.size, dtype=np.float32)
        return flat.reshape(w.shape)
    if kind == "low-rank":
        if ".attn." not in name or w.ndim != 2:
            return w
        scale = np.float32(np.sqrt(0.1 * float(w.std()) / np.sqrt(8)))
        b = rng.standard_normal((w.shape[0], 8), dtype=np.float32) * scale
        a = rng.standard_normal((8, w.shape[1]), dtype=np.float32) * scale
        return w + b @ a
    if kind == "ia3":
        if name.endswith("mlp.up.weight"):
            return w * (1 + np.float32(0.2) * rng.standard_normal(w.shape[0], dtype=np.float32))[:, None]
        if name.endswith("mlp.down.weight"):
            return w * (1 + np.float32(0.2) * rng.standard_normal(w.shape[1], dtype=np.float32))[None, :]
        return w
    if kind == "full":
        rms = np.float32(np.sqrt(np.mean(np.square(w, dtype=np.float64))))
        return w + np.float32(0.01) * rms * rng.standard_normal(w.shape, dtype=np.float32)
    raise ValueError(kind)


def version(shapes: dict[str, tuple[int, ...]], dtype: str, kind: str | None) -> Tensors:
    rng = np.random.default_rng(7 + (KINDS.index(kind) if kind else 0))
    for index, (name, shape) in enumerate(shapes.items()):
        stored = to_dtype(v1_tensor(name, shape), dtype)
        if kind is not None:
            stored = to_dtype(change(kind, name, from_dtype(stored, dtype), index, rng), dtype)
        yield name, stored


def write(path: Path, shapes: dict[str, tuple[int, ...]], dtype: str, tensors: Tensors) -> str:
    """A safetensors file written one tensor at a time; returns its sha256."""
    itemsize = 4 if dtype == "float32" else 2
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes.items():
        size = itemsize * int(np.prod(shape))
        header[name] = {"dtype": "F32" if dtype == "float32" else "BF16", "shape": list(shape),
                        "data_offsets": [offset, offset + size]}  # fmt: skip
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for chunk in (struct.pack("<Q", len(raw)), raw):
            out.write(chunk)
            digest.update(chunk)
        for _, stored in tensors:
            data = np.ascontiguousarray(stored).view(np.uint8).reshape(-1)
            out.write(data)
            digest.update(data)
    return digest.hexdigest()


# -- one run -----------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def timed(ws: Workspace, *args: str, cwd: Path | None = None, settle: bool = True) -> float:
    """A git command's wall seconds, started with no dirty pages left to write and (`settle`) on a
    settled index. Not settled before an add: refreshing the index would clean the changed file.

    A checkout writes the whole checkpoint; without `sync` the kernel writes it back during the
    next timed command, which then pays for it."""
    if settle:
        ws.settle(cwd)
    drop_page_cache_hint()
    return ws.git(*args, cwd=cwd)


def measure(
    root: Path, v1: Path, v2: Path, sums: tuple[str, str], rounds: int, lfs_first: bool
) -> dict[str, dict[str, float]]:
    """Both tools' figures, each step timed for one tool and then the other (`lfs_first` says
    which goes first) in repositories side by side, so a slow moment of the machine falls on
    one step of both rather than on every step of one."""
    tools = ("lfs", "theta") if lfs_first else ("theta", "lfs")
    spaces = {tool: Workspace(root / tool, tool) for tool in tools}
    r: dict[str, dict[str, float]] = {tool: {} for tool in tools}

    def each(step: str, action: Callable[[Workspace], float]) -> None:
        for tool in tools:
            r[tool][step] = action(spaces[tool])

    def add(ws: Workspace, source: Path, label: str) -> float:
        shutil.copyfile(source, ws.work / MODEL)
        before, seen = ws.lfs_bytes(), len(ws.peaks)
        seconds = timed(ws, "add", MODEL, settle=False)
        r[ws.tool][f"peak add {label}"] = max(ws.peaks[seen:], default=0)
        ws.git("commit", "-q", "-m", label)
        r[ws.tool][f"stored {label}"] = ws.lfs_bytes() - before
        return seconds

    def checkout(ws: Workspace, rev: str, expected: str) -> float:
        seconds = timed(ws, "checkout", "-q", rev, cwd=ws.root / "clone")
        if sha256_file(ws.root / "clone" / MODEL) != expected:
            raise RuntimeError(f"{ws.tool}: `git checkout {rev}` did not give back the committed file")
        return seconds

    def clone(ws: Workspace) -> float:
        drop_page_cache_hint()
        seconds = ws.clone("clone")
        r[ws.tool]["downloaded"] = ws.lfs_bytes(ws.root / "clone" / ".git")
        if sha256_file(ws.root / "clone" / MODEL) != sums[1]:
            raise RuntimeError(f"{ws.tool}: the clone's checkout is not v2")
        return seconds

    each("add v1", lambda ws: add(ws, v1, "v1"))
    each("add v2", lambda ws: add(ws, v2, "v2"))
    for ws in spaces.values():
        ws.git("push", "-q", "origin", "main")
        shutil.rmtree(ws.work)  # both tools' repositories side by side: keep only what the clones need
    each("clone", clone)
    each("checkout v1", lambda ws: checkout(ws, "HEAD~1", sums[0]))
    back: dict[str, list[float]] = {tool: [] for tool in tools}
    again: dict[str, list[float]] = {tool: [] for tool in tools}
    for i in range(rounds):
        for tool in tools:
            back[tool].append(checkout(spaces[tool], "main", sums[1]))
        if i + 1 < rounds:
            for tool in tools:
                again[tool].append(checkout(spaces[tool], "HEAD~1", sums[0]))
    for tool in tools:
        r[tool]["checkout v2"] = statistics.median(back[tool])
        r[tool]["checkout v1 again"] = statistics.median(again[tool]) if again[tool] else math.nan
        r[tool]["peak"] = max(spaces[tool].peaks, default=0)
        spaces[tool].cleanup()
    return r


# Both tools side by side hold at most about this many copies of the checkpoint at once: each a
# remote with v1 and v2, and a clone with its file and both versions' objects.
COPIES_AT_ONCE = 10


def check_space(root: Path, checkpoint_bytes: int) -> None:
    """Stop before starting when the disk cannot hold a run (the sources, then both tools' repositories)."""
    need = (COPIES_AT_ONCE + 3) * checkpoint_bytes
    free = shutil.disk_usage(root).free
    if free < need:
        raise SystemExit(
            f"bench/commit.py: {mib(checkpoint_bytes)} checkpoints need about {mib(need)} free in {root.parent},"
            f" which has {mib(free)}; point TMPDIR at a larger disk, or pass smaller --sizes"
        )


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


# -- report ------------------------------------------------------------------------------------


def share(n: float, size: int) -> str:
    return f"{mib(n)} ({n / size:.1%})"


def targets(kind: str, dtype: str) -> dict[str, float]:
    """The ratio to Git LFS each row may reach (None where there is none)."""
    out = {"add v1": 0.6, "add v2": 0.6 if kind in MOSTLY_UNCHANGED else 1.0, "clone": 1.0,
           "checkout v1": 1.0, "checkout v2": 1.0, "checkout v1 again": 1.0, "downloaded": 1.0}  # fmt: skip
    dense = 0.9 if dtype == "float32" else 0.75
    out["stored v1"] = dense
    out["stored v2"] = dense if kind == "full" else 1.0 if kind == "two" else 0.05
    return out


def verdict(ratio: float, target: float | None) -> str:
    if target is None:
        return ""
    return f" (<= {target:g}: {'ok' if ratio <= target else '**over**'})"


def table(
    kind: str, results: dict[str, dict[str, dict[str, float]]], size: dict[str, int], largest: dict[str, int]
) -> str:
    header = ["step"] + [f"{d} {c}" for d in results for c in ("git-lfs", "theta", "theta / git-lfs")]
    rows = []
    for key in (*STEPS, "stored v1", "stored v2", "downloaded"):
        if any(math.isnan(by_tool[tool][key]) for by_tool in results.values() for tool in by_tool):
            continue  # one checkout round: no second checkout of v1
        row = [
            {"clone": "fresh clone", "checkout v1": "checkout v1 (from v2, first)",
             "checkout v2": "checkout v2 (from v1)", "checkout v1 again": "checkout v1 (from v2, again)",
             "stored v1": "new bytes, v1", "stored v2": "new bytes, v2", "downloaded": "bytes a clone downloads"
             }.get(key, key) + ("" if key.startswith(("stored", "downloaded")) else " (s)")
        ]  # fmt: skip
        for dtype, by_tool in results.items():
            lfs, theta = by_tool["lfs"][key], by_tool["theta"][key]
            ratio = theta / lfs if lfs else 0.0
            target = targets(kind, dtype).get(key)
            if key.startswith(("stored", "downloaded")):
                row += [share(lfs, size[dtype]), share(theta, size[dtype]), f"{ratio:.2f}x{verdict(ratio, target)}"]
            else:
                row += [f"{lfs:.2f}", f"{theta:.2f}", f"{ratio:.2f}x{verdict(ratio, target)}"]
        rows.append(row)
    row = ["filter peak RSS (add v2 / any step)"]
    for dtype, by_tool in results.items():
        budget = BUDGET_MIB + BUDGET_TENSORS * largest[dtype] / 2**20
        peak = by_tool["theta"]["peak"]
        row += ["-", f"{by_tool['theta']['peak add v2']:.0f} / {peak:.0f} MiB",
                f"budget {budget:.0f} MiB: {'ok' if peak <= budget else '**over**'}"]  # fmt: skip
    rows.append(row)
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096], help="checkpoint sizes in MiB")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; the median is reported")
    parser.add_argument(
        "--rounds", type=int, default=3, help="checkouts of v2 (from v1) per run, with v1 again between; the median"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "commit.md")
    args = parser.parse_args()
    if args.rounds < 1 or args.repeat < 1:
        parser.error("--rounds and --repeat need at least 1")
    sections = []
    started = time.perf_counter()
    for size_mib in args.sizes:
        shapes = transformer_shapes(size_mib * 2**20)
        with tempfile.TemporaryDirectory(prefix="theta-bench-commit-") as tmp:
            root = Path(tmp)
            check_space(root, size_mib * 2**20)
            files: dict[str, tuple[Path, str]] = {}
            size, largest = {}, {}
            for dtype in args.dtypes:
                path = root / f"v1-{dtype}.safetensors"
                files[dtype] = (path, write(path, shapes, dtype, version(shapes, dtype, None)))
                size[dtype] = path.stat().st_size
                largest[dtype] = max(int(np.prod(s)) for s in shapes.values()) * (4 if dtype == "float32" else 2)
            title = (
                f"### {size_mib} MiB: {len(shapes)} tensors, float32 {mib(size.get('float32', 0))}"
                f" (largest {mib(largest.get('float32', 0))}), bfloat16 {mib(size.get('bfloat16', 0))}"
            )
            sections.append(title)
            print(title, flush=True)
            for kind in args.kinds:
                results: dict[str, dict[str, dict[str, float]]] = {}
                for dtype in args.dtypes:
                    v1, v1_sum = files[dtype]
                    v2 = root / "v2.safetensors"
                    v2_sum = write(v2, shapes, dtype, version(shapes, dtype, kind))
                    runs: dict[str, list[dict[str, float]]] = {"lfs": [], "theta": []}
                    for i in range(args.repeat):
                        both = measure(root / f"{kind}{i}", v1, v2, (v1_sum, v2_sum), args.rounds, i % 2 == 0)
                        for tool, figures in both.items():
                            runs[tool].append(figures)
                    results[dtype] = {tool: median_of(r) for tool, r in runs.items()}
                    v2.unlink()
                section = f"#### {size_mib} MiB, v2: {LABELS[kind]}\n\n" + table(kind, results, size, largest)
                sections.append(section)
                print(section + "\n", flush=True)
    command = "PATH=\"$PWD/.venv/bin:$PATH\" .venv/bin/python bench/commit.py " + " ".join(
        [f"--sizes {' '.join(map(str, args.sizes))}", f"--kinds {' '.join(args.kinds)}",
         f"--dtypes {' '.join(args.dtypes)}", f"--repeat {args.repeat}", f"--rounds {args.rounds}"]
    )  # fmt: skip
    footer = f"Reproduce: `{command}` ({time.perf_counter() - started:.0f} s for this run)."
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n\n".join([*sections, footer]) + "\n")
    print(footer)


if __name__ == "__main__":
    main()
