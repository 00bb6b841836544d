"""Storage of incremental updates: Theta against plain Git LFS on the same versions, in one run.

    .venv/bin/python bench/updates.py                       # 1 GiB, every scenario
    .venv/bin/python bench/updates.py --size-mib 64 --scenarios a c --profile

A transformer-like float32 safetensors checkpoint (bench/synthetic.py) is committed as v1;
then, in a fresh repository pair (one git-lfs, one Theta) per scenario, v1 again and after it:

- a  2% of the values of every tensor changed, at scattered places;
- b  a rank-8 update B @ A (float32) added to every attention weight matrix, as a merged LoRA
     adapter does; the product's standard deviation is 10% of the weights';
- c  IA3: the feed-forward weights scaled per channel (rows of `up`, columns of `down`);
- d  a full fine-tune: noise of 1% of each tensor's root mean square on every value;
- e  a chain of 8 commits, each changing 0.1% of the values of every tensor; then `git checkout`
     of the chain's end is timed against the same checkpoint stored dense (a Theta repository
     with `theta.maxChainLength 0`) and against git-lfs.

New objects are the bytes added under .git/lfs/objects by the new commit(s), as a share of the
checkpoint file. Update types are counted over the parameters of the committed metadata
(`git show HEAD:model.safetensors`, the last step of each; a parameter whose entry is the same as
in HEAD~1 counts as "unchanged"). For d, the v2 tensors are also
compressed with zstd level 1, raw and byte-grouped, to show what compressing dense tensors would
gain. `--profile` times every update type's encoding (and the compression of its arrays, as the
kernel does) in this process, on each scenario's tensors. Storage is deterministic; times are
the median of `--repeat` runs in fresh repositories (the two tools alternate which goes first).
Writes markdown to stdout and to bench/results/updates.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import zstandard
from common import Workspace, markdown_table, mib
from synthetic import make_model, write

from theta.plugins import default_manager
from theta.store import codecs
from theta.tensors import Tensor

MODEL = "model.safetensors"
Model = dict[str, np.ndarray]

SCATTERED_SHARE = 0.02
LORA_RANK = 8
LORA_SIZE = 0.1  # the product's standard deviation, as a share of the weights'
NOISE = 0.01  # full fine-tune: noise of 1% of each tensor's root mean square
CHAIN_LENGTH = 8
CHAIN_SHARE = 0.001


# -- the versions ------------------------------------------------------------------------------


def scattered(model: Model, rng: np.random.Generator, share: float) -> Model:
    """`share` of the values of every tensor, at random places, moved by about 5% of their value."""
    out = {}
    for name, w in model.items():
        flat = w.reshape(-1).copy()
        places = np.flatnonzero(rng.random(flat.size, dtype=np.float32) < share)
        if places.size == 0:
            places = rng.integers(0, flat.size, 1)
        flat[places] *= 1 + np.float32(0.05) * rng.standard_normal(places.size, dtype=np.float32)
        out[name] = flat.reshape(w.shape)
    return out


def a_scattered(model: Model, rng: np.random.Generator) -> Iterator[Model]:
    yield scattered(model, rng, SCATTERED_SHARE)


def b_low_rank(model: Model, rng: np.random.Generator) -> Iterator[Model]:
    """W + B @ A on every attention matrix, the product's values a tenth of the weights' in size."""
    out = dict(model)
    for name, w in model.items():
        if ".attn." in name and w.ndim == 2:
            scale = np.sqrt(LORA_SIZE * float(w.std()) / np.sqrt(LORA_RANK))
            b = rng.standard_normal((w.shape[0], LORA_RANK), dtype=np.float32) * np.float32(scale)
            a = rng.standard_normal((LORA_RANK, w.shape[1]), dtype=np.float32) * np.float32(scale)
            out[name] = w + b @ a
    yield out


def c_ia3(model: Model, rng: np.random.Generator) -> Iterator[Model]:
    """Rows of every `mlp.up` and columns of every `mlp.down` multiplied by their own factor."""
    out = dict(model)
    for name, w in model.items():
        if name.endswith("mlp.up.weight"):
            out[name] = w * (1 + np.float32(0.2) * rng.standard_normal(w.shape[0], dtype=np.float32))[:, None]
        elif name.endswith("mlp.down.weight"):
            out[name] = w * (1 + np.float32(0.2) * rng.standard_normal(w.shape[1], dtype=np.float32))[None, :]
    yield out


def d_fine_tune(model: Model, rng: np.random.Generator) -> Iterator[Model]:
    out = {}
    for name, w in model.items():
        rms = np.float32(np.sqrt(np.mean(np.square(w, dtype=np.float64))))
        out[name] = w + NOISE * rms * rng.standard_normal(w.shape, dtype=np.float32)
    yield out


def e_chain(model: Model, rng: np.random.Generator) -> Iterator[Model]:
    current = model
    for _ in range(CHAIN_LENGTH):
        current = scattered(current, rng, CHAIN_SHARE)
        yield current


# key: (label, target for Theta's new objects as a share of the file, the versions after v1)
SCENARIOS: dict[str, tuple[str, float, Callable[[Model, np.random.Generator], Iterator[Model]]]] = {
    "a": (f"{SCATTERED_SHARE:.0%} of values, scattered", 0.05, a_scattered),
    "b": (f"rank-{LORA_RANK} update of attention", 0.05, b_low_rank),
    "c": ("IA3 scaling of feed-forward", 0.02, c_ia3),
    "d": ("full fine-tune (noise everywhere)", 1.0, d_fine_tune),
    "e": (f"chain of {CHAIN_LENGTH} commits, {CHAIN_SHARE:.1%} of values each", 1.0, e_chain),
}


def versions(key: str, model: Model) -> Iterator[Model]:
    return SCENARIOS[key][2](model, np.random.default_rng(100 + ord(key)))


# -- one run -----------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def metadata(ws: Workspace, rev: str) -> dict[str, dict]:
    shown = subprocess.run(
        ["git", "show", f"{rev}:{MODEL}"], cwd=ws.work, env=ws.env, capture_output=True, check=True
    ).stdout
    return json.loads(shown)["parameters"]


def chosen_updates(ws: Workspace) -> tuple[Counter[str], Counter[int]]:
    """The update type of the last step of every parameter that HEAD changed ("unchanged" for the
    others: they keep their entry, a dense step), and the chain lengths at HEAD."""
    head, parent = metadata(ws, "HEAD"), metadata(ws, "HEAD~1")
    kinds = Counter("unchanged" if parent.get(n) == p else p["steps"][-1]["update"] for n, p in head.items())
    lengths = Counter(len(p["steps"]) for p in head.values())
    return kinds, lengths


def checkout_seconds(ws: Workspace, start: str, target: str, expected: str) -> float:
    """Time `git checkout target` from `start`, and check the file git wrote."""
    ws.git("checkout", "-q", start)
    ws.settle()
    seconds = ws.git("checkout", "-q", target)
    if sha256_file(ws.work / MODEL) != expected:
        raise RuntimeError(f"{ws.tool}: checkout of {target} did not give back the committed file")
    return seconds


def run_scenario(key: str, model: Model, v1: Path, root: Path, lfs_first: bool) -> dict[str, object]:
    order = ("lfs", "theta") if lfs_first else ("theta", "lfs")
    spaces = {tool: Workspace(root / tool, tool) for tool in order}
    added: dict[str, list[float]] = {tool: [] for tool in order}
    before: dict[str, int] = {}
    for tool in order:
        ws = spaces[tool]
        shutil.copyfile(v1, ws.work / MODEL)
        ws.git("add", MODEL)
        ws.git("commit", "-q", "-m", "v1")
        before[tool] = ws.lfs_bytes()
    latest = root / "latest.safetensors"
    commits = 0
    for version in versions(key, model):
        write(version, latest)
        commits += 1
        for tool in order:
            ws = spaces[tool]
            shutil.copyfile(latest, ws.work / MODEL)
            added[tool].append(ws.git("add", MODEL))
            ws.git("commit", "-q", "-m", f"v{commits + 1}")
    result: dict[str, object] = {"commits": commits, "version": version}
    for tool in order:
        result[f"{tool} new"] = spaces[tool].lfs_bytes() - before[tool]
        result[f"{tool} add"] = statistics.mean(added[tool])
    result["kinds"], result["lengths"] = chosen_updates(spaces["theta"])
    if key == "e":
        expected = sha256_file(latest)
        dense = Workspace(root / "theta-dense", "theta")
        dense.git("config", "theta.maxChainLength", "0")
        for path, message in ((v1, "v1"), (latest, "end of chain")):
            shutil.copyfile(path, dense.work / MODEL)
            dense.git("add", MODEL)
            dense.git("commit", "-q", "-m", message)
        dense_kinds, _ = chosen_updates(dense)
        if set(dense_kinds) != {"dense"}:
            raise RuntimeError(f"the dense comparison stored {dict(dense_kinds)}")
        for tool in order:
            result[f"{tool} checkout"] = checkout_seconds(spaces[tool], f"HEAD~{commits}", "main", expected)
        result["dense checkout"] = checkout_seconds(dense, "HEAD~1", "main", expected)
        dense.cleanup()
    for ws in spaces.values():
        ws.cleanup()
    latest.unlink()
    return result


# -- what compression and each update type would do, measured in this process ------------------


def grouped(bits: np.ndarray) -> np.ndarray:
    """Byte-grouped: the highest byte of every element first, then the next, ... (little-endian input)."""
    return np.ascontiguousarray(bits.view(np.uint8).reshape(-1, bits.itemsize).T[::-1]).reshape(-1)


def zstd_ratios(model: Model, base: Model) -> list[list[object]]:
    """zstd level 1, one tensor at a time: the tensors raw, byte-grouped, and their XOR with `base` byte-grouped."""
    cctx = zstandard.ZstdCompressor(level=1)
    total = sum(w.nbytes for w in model.values())
    bits = {name: w.view(np.uint32).reshape(-1) for name, w in model.items()}
    layouts: dict[str, Callable[[str], np.ndarray]] = {
        "v2 tensors, raw": lambda name: bits[name].view(np.uint8),
        "v2 tensors, byte-grouped": lambda name: grouped(bits[name]),
        "XOR with v1, byte-grouped": lambda name: grouped(bits[name] ^ base[name].view(np.uint32).reshape(-1)),
    }
    rows = []
    for label, prepare in layouts.items():
        out, seconds = 0, 0.0
        for name in model:
            data = prepare(name)
            start = time.perf_counter()
            out += len(cctx.compress(data))
            seconds += time.perf_counter() - start
        rows.append([label, f"{out / total:.3f}", f"{total / seconds / 1e6:.0f}"])
    return rows


def profile(model: Model, base: Model) -> list[list[object]]:
    """Seconds each update type spends encoding every changed tensor and compressing its arrays
    (the kernel tries every type on every changed tensor), and on how many tensors it applied."""
    kinds = {n: u for n, u in default_manager().registry.update_types.items() if u.needs_base}
    encode: Counter[str] = Counter()
    pack: Counter[str] = Counter()
    applied: Counter[str] = Counter()
    stored: Counter[str] = Counter()
    hashing = 0.0
    for name, w in model.items():
        if np.array_equal(w.view(np.uint8), base[name].view(np.uint8)):
            continue
        tensor, previous = Tensor.from_numpy(w), Tensor.from_numpy(base[name])
        start = time.perf_counter()
        tensor.sha256()
        hashing += time.perf_counter() - start
        for kind, update_type in kinds.items():
            start = time.perf_counter()
            update = update_type.encode(tensor, previous, None)
            encode[kind] += time.perf_counter() - start
            if update is None:
                continue
            applied[kind] += 1
            start = time.perf_counter()
            stored[kind] += sum(len(codecs.encode(a.data)[1]) for a in update.arrays.values())
            pack[kind] += time.perf_counter() - start
    rows = [
        [kind, f"{encode[kind]:.2f}", f"{pack[kind]:.2f}", applied[kind], mib(stored[kind]) if applied[kind] else "-"]
        for kind in kinds
    ]
    rows.append(["(sha256 of the new tensors)", f"{hashing:.2f}", "-", "-", "-"])
    return rows


# -- report ------------------------------------------------------------------------------------


def share(n: float, size: int) -> str:
    return f"{n / size:.1%}" if n < size * 10 else f"{n / size:.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="checkpoint size in MiB")
    parser.add_argument("--scenarios", nargs="+", choices=sorted(SCENARIOS), default=sorted(SCENARIOS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario; times are their median")
    parser.add_argument("--profile", action="store_true", help="also time each update type's encoding in-process")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "updates.md")
    args = parser.parse_args()

    model = make_model(args.size_mib * 2**20)
    rows, checkout_rows, extra = [], [], []
    with tempfile.TemporaryDirectory(prefix="theta-bench-updates-") as tmp:
        root = Path(tmp)
        v1 = root / "v1.safetensors"
        write(model, v1)
        size = v1.stat().st_size
        largest = max(w.nbytes for w in model.values())
        title = f"### {mib(size)} float32 checkpoint, {len(model)} tensors, largest {mib(largest)}"
        print(title + "\n", flush=True)
        for key in args.scenarios:
            label, target, _ = SCENARIOS[key]
            runs = [run_scenario(key, model, v1, root / f"{key}{i}", lfs_first=i % 2 == 0) for i in range(args.repeat)]
            first = runs[0]
            for later in runs[1:]:
                del later["version"]
            timing = {k: statistics.median(float(r[k]) for r in runs) for k in first if k.endswith(("add", "checkout"))}
            kinds = ", ".join(f"{k} {n}" for k, n in first["kinds"].most_common())
            theta_new = int(first["theta new"])
            if key == "e":
                goal, met = "checkout <= 2x dense", timing["theta checkout"] <= 2 * timing["dense checkout"]
            else:
                goal, met = f"<= {target:.0%}", theta_new <= target * size
            rows.append([
                f"{key}: {label}", goal,
                share(int(first["lfs new"]), size), share(theta_new, size),
                f"{timing['lfs add']:.2f}", f"{timing['theta add']:.2f}", kinds, "yes" if met else "**no**",
            ])  # fmt: skip
            print(f"{key}: {rows[-1]} chain lengths {dict(first['lengths'])}", flush=True)
            if key == "e":
                dense = timing["dense checkout"]
                checkout_rows = [
                    [what, f"{timing[k]:.2f}", f"{timing[k] / dense:.2f}x"]
                    for what, k in (
                        ("Theta, end of the chain", "theta checkout"),
                        ("Theta, same checkpoint stored dense", "dense checkout"),
                        ("git-lfs, end of the chain", "lfs checkout"),
                    )
                ]
            if key == "d":
                table = markdown_table(["data (zstd level 1, per tensor)", "compressed / input", "MB/s"],
                                       zstd_ratios(first["version"], model))  # fmt: skip
                extra.append(f"#### d: what zstd would gain on the dense tensors\n\n{table}")
            if args.profile:
                table = markdown_table(
                    ["update type", "encode s", "compress s", "applied to", "stored"],
                    profile(first["version"], model if key != "e" else last_but_one(model)),
                )
                extra.append(f"#### {key}: time per update type (in-process, every changed tensor)\n\n{table}")
            del runs, first
    header = ["scenario", "target (Theta)", "git-lfs new", "Theta new", "git-lfs add s", "Theta add s",
              "Theta update types (tensors HEAD changed)", "within target"]  # fmt: skip
    sections = [title, markdown_table(header, rows)]
    notes = [
        "New objects: bytes added under .git/lfs/objects, as a share of the checkpoint file (for e, by"
        f" all {CHAIN_LENGTH} commits); `add` seconds are per commit (for e, the mean over the chain).",
    ]
    if checkout_rows:
        sections.append(
            f"#### e: `git checkout` of the end of the chain ({CHAIN_LENGTH} updates on a dense version)\n\n"
            + markdown_table(["checkout of", "seconds", "/ dense"], checkout_rows)
        )
        notes.append("Target for e: checkout of the chain's end at most 2x the dense checkout.")
    sections += extra
    report = "\n\n".join([*sections, "\n".join(notes)]) + "\n"
    print("\n" + report, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)


def last_but_one(model: Model) -> Model:
    """The chain's version before its last, the base of the last commit."""
    *_, before, _ = versions("e", model)
    return before


if __name__ == "__main__":
    main()
