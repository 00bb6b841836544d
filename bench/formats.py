"""Theta against plain Git LFS on a checkpoint of every format Theta supports, in one run.

    .venv/bin/python bench/formats.py                        # 1 GiB each, writes bench/results/formats.md
    .venv/bin/python bench/formats.py --size-mib 64 --repeat 1 --formats pytorch onnx

Each checkpoint is written by its own framework (torch.save, Keras 3 `save_weights` and `save`,
`tf.train.Checkpoint.write`, the onnx library) in a separate process, so the frameworks' memory
is gone before anything is timed. For each format and tool, in a fresh repository: the first
`git add` of the checkpoint, then `git checkout` of it after deleting it (the restored bytes
must equal the committed ones). Times are wall seconds of the git command, the median of
`--repeat` runs (the two tools alternate which goes first); the ratio is Theta / Git LFS.

Memory: the Theta filter process's peak RSS (it reports it with THETA_TRACE=1), against a
budget of 1.3x the checkpoint size plus what importing the format's framework costs (measured
in a separate `python -c "import torch"`). A small checkpoint of the same format is also added
and checked out with PYTHONPROFILEIMPORTTIME=1 to show whether the filter imports the
framework at all, and what the filter costs when the checkpoint is tiny.
"""

from __future__ import annotations

import argparse
import filecmp
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import Workspace, drop_page_cache_hint, markdown_table, mib
from synthetic import make_model

SMALL_BYTES = 2**20
LAYERS = 50  # dense stacks: 50 kernels and 50 biases
ADD_TARGET = CHECKOUT_TARGET = 2.0
RSS_FACTOR = 1.3


# ---- writing the checkpoints (run in a child process per format) --------------------------------


def dense_width(total_bytes: int) -> int:
    """Width of a stack of LAYERS float32 d x d Dense layers of about `total_bytes`."""
    return max(64, int((total_bytes / 4 / LAYERS) ** 0.5) // 64 * 64)


def random_matrix(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    out = rng.standard_normal(shape, dtype=np.float32)
    out *= np.float32(0.02)
    return out


def quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # silences a notice; we compute nothing


def write_pytorch(total_bytes: int, folder: Path) -> list[str]:
    import torch

    state = {name: torch.from_numpy(a) for name, a in make_model(total_bytes).items()}
    torch.save(state, folder / "model.pt")
    return ["model.pt"]


def dense_stack(total_bytes: int):  # -> keras.Model
    quiet_tensorflow()
    import keras

    d = dense_width(total_bytes)
    layers = [keras.layers.Dense(d, kernel_initializer="zeros", name=f"dense_{i}") for i in range(LAYERS)]
    model = keras.Sequential([keras.Input((d,)), *layers])
    rng = np.random.default_rng(0)
    for layer in layers:
        layer.set_weights([random_matrix(rng, (d, d)), random_matrix(rng, (d,))])
    return model


def write_keras_h5(total_bytes: int, folder: Path) -> list[str]:
    dense_stack(total_bytes).save_weights(str(folder / "model.weights.h5"))
    return ["model.weights.h5"]


def write_keras(total_bytes: int, folder: Path) -> list[str]:
    dense_stack(total_bytes).save(str(folder / "model.keras"))
    return ["model.keras"]


def write_tf_checkpoint(total_bytes: int, folder: Path) -> list[str]:
    quiet_tensorflow()
    import tensorflow as tf

    model, variables = make_model(total_bytes), {}
    for name in list(model):  # one numpy copy at a time: each array goes once its variable holds it
        variables[name.replace(".", "_")] = tf.Variable(model.pop(name), name=name)
    tf.train.Checkpoint(**variables).write(str(folder / "ckpt-1"))
    return sorted(p.name for p in folder.glob("ckpt-1.*"))


def write_onnx(total_bytes: int, folder: Path) -> list[str]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d = dense_width(total_bytes)
    rng = np.random.default_rng(0)
    nodes, initializers, previous = [], [], "x"
    for i in range(LAYERS):
        initializers.append(numpy_helper.from_array(random_matrix(rng, (d, d)), f"dense_{i}.weight"))
        initializers.append(numpy_helper.from_array(random_matrix(rng, (d,)), f"dense_{i}.bias"))
        nodes.append(helper.make_node("MatMul", [previous, f"dense_{i}.weight"], [f"mm_{i}"]))
        previous = "y" if i == LAYERS - 1 else f"h_{i}"
        nodes.append(helper.make_node("Add", [f"mm_{i}", f"dense_{i}.bias"], [previous]))
    graph = helper.make_graph(
        nodes,
        "dense_stack",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, d])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(folder / "model.onnx"))
    return ["model.onnx"]


# ---- the formats ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    name: str
    what: str  # how the file is written, for the section title
    framework: str  # the module a user imports to write (and load) this format
    pattern: str  # tracked pattern; other written files are committed as ordinary files
    theta_format: str | None  # `git theta track --format`, where detection cannot decide
    write: Callable[[int, Path], list[str]]


SPECS = {
    s.name: s
    for s in (
        Spec("pytorch", "`torch.save` of a state dict", "torch", "*.pt", None, write_pytorch),
        Spec("keras-h5", "Keras 3 `save_weights` of a Dense stack", "keras", "*.h5", None, write_keras_h5),
        Spec("keras", "Keras 3 `model.save` of a Dense stack", "keras", "*.keras", None, write_keras),
        Spec(
            "tf-checkpoint",
            "`tf.train.Checkpoint.write` of tf.Variables",
            "tensorflow",
            "*.data-*",
            "tf-checkpoint",
            write_tf_checkpoint,
        ),
        Spec("onnx", "onnx.helper graph with numpy_helper initializers", "onnx", "*.onnx", None, write_onnx),
    )
}


def write_both(name: str, total_bytes: int, big: Path, small: Path) -> tuple[list[str], list[str]]:
    """Child process: the benchmark checkpoint and a small one of the same format."""
    big.mkdir(parents=True)
    small.mkdir(parents=True)
    spec = SPECS[name]
    return spec.write(total_bytes, big), spec.write(SMALL_BYTES, small)


# ---- measuring --------------------------------------------------------------------------------


def workspace(root: Path, tool: str, spec: Spec) -> Workspace:
    ws = Workspace(root, tool)
    if tool == "lfs":
        ws.git("lfs", "track", spec.pattern)
    else:
        ws.run("git-theta", "track", spec.pattern, *(["--format", spec.theta_format] if spec.theta_format else []))
    ws.git("add", ".gitattributes")
    ws.git("commit", "-q", "-m", "track the checkpoint")
    return ws


def measure(tool: str, root: Path, spec: Spec, source: Path, files: list[str]) -> dict[str, float]:
    ws = workspace(root, tool, spec)
    for name in files:
        os.link(source / name, ws.work / name)  # the checkout writes a new file; the original stays
    drop_page_cache_hint()
    r: dict[str, float] = {}
    r["add"] = ws.git("add", *files)
    r["peak add"] = max(ws.peaks, default=0)
    ws.git("commit", "-q", "-m", "checkpoint")
    for name in files:
        (ws.work / name).unlink()
    drop_page_cache_hint()
    ws.peaks.clear()
    r["checkout"] = ws.git("checkout", "--", *files)
    r["peak checkout"] = max(ws.peaks, default=0)
    for name in files:
        if not filecmp.cmp(source / name, ws.work / name, shallow=False):
            raise RuntimeError(f"{tool}: {name} checked out differs from what was added")
    ws.cleanup()
    return r


IMPORT_LINE = re.compile(r"^import time:\s+\d+\s+\|\s+\d+\s+\|\s+(\S+)\s*$", re.MULTILINE)


def filter_imports(root: Path, spec: Spec, source: Path, files: list[str]) -> tuple[bool, int]:
    """Add and check out a small checkpoint: whether the filter imported the framework, and its peak RSS."""
    ws = workspace(root, "theta", spec)
    for name in files:
        os.link(source / name, ws.work / name)
    env = {**ws.env, "PYTHONPROFILEIMPORTTIME": "1"}
    stderr = ""
    for args in (["add", *files], ["commit", "-q", "-m", "small"]):
        proc = subprocess.run(["git", *args], cwd=ws.work, env=env, capture_output=True, text=True, check=True)
        stderr += proc.stderr
    for name in files:
        (ws.work / name).unlink()
    proc = subprocess.run(["git", "checkout", "--", *files], cwd=ws.work, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"checkout of the small {spec.name} checkpoint failed:\n{proc.stderr}")
    stderr += proc.stderr
    modules = set(IMPORT_LINE.findall(stderr))
    peaks = [int(m) for m in re.findall(r"filter-process peak RSS (\d+) MiB", stderr)]
    ws.cleanup()
    return any(m == spec.framework or m.startswith(spec.framework + ".") for m in modules), max(peaks, default=0)


def import_rss(module: str) -> int:
    """Peak RSS in MiB of a fresh interpreter that imports `module`."""
    code = f"import resource, {module}; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow", "TF_ENABLE_ONEDNN_OPTS": "0"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(proc.stdout.split()[-1])


# ---- reporting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    spec: Spec
    files: list[str]
    size: int  # bytes of all the files added
    lfs: dict[str, float]
    theta: dict[str, float]
    framework_mib: int
    imports_framework: bool
    small_peak: int
    small: dict[str, dict[str, float]]  # tool -> one run on the small checkpoint: the fixed cost

    @property
    def budget(self) -> float:
        return RSS_FACTOR * self.size / 2**20 + self.framework_mib

    @property
    def peak(self) -> float:
        return max(self.theta["peak add"], self.theta["peak checkout"])

    def ratio(self, key: str) -> float:
        return self.theta[key] / self.lfs[key]


def verdict(ok: bool) -> str:
    return "ok" if ok else "**over**"


def section(res: Result) -> str:
    spec, files = res.spec, ", ".join(f"`{f}`" for f in res.files)
    rows: list[list[object]] = []
    for key, target in (("add", ADD_TARGET), ("checkout", CHECKOUT_TARGET)):
        ratio = res.ratio(key)
        rows.append([
            f"`git {key}`", f"{res.lfs[key]:.2f}", f"{res.theta[key]:.2f}", f"{ratio:.2f}x",
            f"at most {target:g}x: {verdict(ratio <= target)}",
        ])  # fmt: skip
    for key in ("add", "checkout"):
        rows.append([
            f"filter peak RSS, {key}", "-", f"{res.theta['peak ' + key]:.0f} MiB", "-",
            f"budget {res.budget:.0f} MiB: {verdict(res.theta['peak ' + key] <= res.budget)}",
        ])  # fmt: skip
    imported = "imports" if res.imports_framework else "does not import"
    notes = (
        f"Budget: {RSS_FACTOR:g} x {mib(res.size)} + `import {spec.framework}` ({res.framework_mib} MiB in a fresh "
        f"interpreter). The filter {imported} {spec.framework} when it adds and checks out a "
        f"{mib(SMALL_BYTES)} checkpoint of this format (peak RSS there: {res.small_peak} MiB). "
        f"Fixed cost, the same {mib(SMALL_BYTES)} checkpoint: `git add` {res.small['theta']['add']:.2f} s "
        f"(git-lfs {res.small['lfs']['add']:.2f} s), `git checkout` {res.small['theta']['checkout']:.2f} s "
        f"(git-lfs {res.small['lfs']['checkout']:.2f} s)."
    )
    track = f"`git theta track '{spec.pattern}'" + (f" --format {spec.theta_format}`" if spec.theta_format else "`")
    title = f"### {spec.name}: {mib(res.size)}, {spec.what} ({files}; {track})"
    table = markdown_table(["step (seconds)", "git-lfs", "theta", "theta / git-lfs", "target"], rows)
    return f"{title}\n\n{table}\n\n{notes}"


def summary(results: list[Result]) -> str:
    rows = [
        [
            r.spec.name, mib(r.size), f"{r.ratio('add'):.2f}x", f"{r.ratio('checkout'):.2f}x",
            f"{r.peak:.0f} / {r.budget:.0f} MiB",
            "yes" if r.imports_framework else "no",
            "yes" if r.ratio("add") <= ADD_TARGET and r.ratio("checkout") <= CHECKOUT_TARGET and r.peak <= r.budget
            else "**no**",
        ]
        for r in results
    ]  # fmt: skip
    header = ["format", "size", "add ratio", "checkout ratio", "peak RSS / budget", "filter imports framework", "ok"]
    return "### Summary\n\n" + markdown_table(header, rows)


# ---- main -------------------------------------------------------------------------------------


def run_format(spec: Spec, root: Path, size_mib: int, repeat: int, framework_mib: dict[str, int]) -> Result:
    big, small = root / "checkpoint", root / "small"
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        files, small_files = pool.submit(write_both, spec.name, size_mib * 2**20, big, small).result()
    size = sum((big / f).stat().st_size for f in files)
    runs: dict[str, list[dict[str, float]]] = {"lfs": [], "theta": []}
    for i in range(repeat):
        for tool in ("lfs", "theta") if i % 2 == 0 else ("theta", "lfs"):
            runs[tool].append(measure(tool, root / f"run{i}" / tool, spec, big, files))
    imports, small_peak = filter_imports(root / "imports", spec, small, small_files)
    fixed = {tool: measure(tool, root / "small-run" / tool, spec, small, small_files) for tool in ("lfs", "theta")}
    if spec.framework not in framework_mib:
        framework_mib[spec.framework] = import_rss(spec.framework)
    return Result(
        spec=spec,
        files=files,
        size=size,
        lfs=median_of(runs["lfs"]),
        theta=median_of(runs["theta"]),
        framework_mib=framework_mib[spec.framework],
        imports_framework=imports,
        small_peak=small_peak,
        small=fixed,
    )


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="checkpoint size in MiB (default 1024)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the median is reported (default 3)")
    parser.add_argument("--formats", nargs="+", choices=list(SPECS), default=list(SPECS), help="formats to run")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "formats.md", help="report")
    args = parser.parse_args()
    sections, results, framework_mib = [], [], {}
    for name in args.formats:
        with tempfile.TemporaryDirectory(prefix=f"theta-bench-{name}-") as tmp:
            results.append(run_format(SPECS[name], Path(tmp), args.size_mib, args.repeat, framework_mib))
        sections.append(section(results[-1]))
        print(sections[-1] + "\n", flush=True)
    sections.append(summary(results))
    print(sections[-1], flush=True)
    intro = (
        f"## Formats: {args.size_mib} MiB checkpoints, median of {args.repeat} run(s) per tool\n\n"
        "Seconds are wall time of the git command in a fresh repository; ratios are Theta / Git LFS."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n\n".join([intro, *sections]) + "\n")


if __name__ == "__main__":
    main()
