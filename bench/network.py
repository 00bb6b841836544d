"""A fresh clone from a Git LFS server over HTTP: Theta against plain Git LFS, in one run.

    .venv/bin/python bench/network.py                          # 1 GiB, both dtypes
    .venv/bin/python bench/network.py --size 256 --rate 400mbit --dtypes bfloat16

The objects are served by giftless on 127.0.0.1 (as in tests/test_http.py). A clone over
`file://` (bench/commit.py) copies objects from disk; here every object is an HTTP request to
a server, as it is for any LFS host. With `--rate`, the loopback is also limited for the clones
(`tc qdisc ... tbf`, which needs root; the limit is removed afterwards). For each dtype and
tool, in a fresh repository: v1 and then v2 of bench/commit.py's checkpoint (`--kind`,
default two tensors changed) are committed and pushed, then `git clone` of the bare remote
is timed, its checkout checked against v2, and the bytes its LFS store received are counted.
Times are wall seconds, the median of `--repeat` clones (the tools alternate which goes
first); ratios are Theta / Git LFS. Writes markdown to stdout and bench/results/network.md
(or `--out`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from commit import DTYPES, KINDS, LABELS, MODEL, sha256_file, version, write
from common import Workspace, markdown_table, mib, publish
from synthetic import transformer_shapes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from lfs_server import giftless


@contextmanager
def limited_loopback(rate: str) -> Iterator[None]:
    """The loopback limited to `rate` (tc's units, e.g. 800mbit) until the block ends; "none": no limit."""
    if rate == "none":
        yield
        return
    add = ["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", rate, "burst", "1mb", "latency", "50ms"]
    proc = subprocess.run(add, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench/network.py: cannot limit the loopback ({proc.stderr.strip()}); run it as root")
    try:
        yield
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)


def prepare(root: Path, tool: str, base: str, v1: Path, v2: Path) -> Workspace:
    ws = Workspace(root / tool, tool)
    (ws.work / ".lfsconfig").write_text(f"[lfs]\n\turl = {base}/bench/{tool}.git/info/lfs\n")
    ws.git("add", ".lfsconfig")
    for label, source in (("v1", v1), ("v2", v2)):
        shutil.copyfile(source, ws.work / MODEL)
        ws.git("add", MODEL)
        ws.git("commit", "-q", "-m", label)
    ws.git("push", "-q", "origin", "main")
    return ws


def timed_clone(ws: Workspace, name: str, expected: str) -> tuple[float, int]:
    target = ws.root / name
    start = time.perf_counter()
    ws.git("clone", "-q", ws.remote.as_uri(), str(target), cwd=ws.root)
    seconds = time.perf_counter() - start
    if sha256_file(target / MODEL) != expected:
        raise RuntimeError(f"{ws.tool}: the clone's checkout is not v2")
    received = ws.lfs_bytes(target / ".git")
    shutil.rmtree(target)
    return seconds, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="checkpoint size in MiB (default 1024)")
    parser.add_argument(
        "--rate", default="none", help="a limit for the loopback, in tc's units (e.g. 800mbit); default none"
    )
    parser.add_argument("--kind", choices=KINDS, default="two", help="what v2 changes (default: two tensors)")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--repeat", type=int, default=3, help="clones per tool; the median is reported")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "network.md")
    args = parser.parse_args()
    shapes = transformer_shapes(args.size * 2**20)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="theta-bench-network-") as tmp:
        root = Path(tmp)
        for dtype in args.dtypes:
            v1, v2 = root / f"v1-{dtype}.safetensors", root / f"v2-{dtype}.safetensors"
            write(v1, shapes, dtype, version(shapes, dtype, None))
            expected = write(v2, shapes, dtype, version(shapes, dtype, args.kind))
            with giftless(root / f"server-{dtype}") as base:
                spaces = {tool: prepare(root / dtype, tool, base, v1, v2) for tool in ("lfs", "theta")}
                runs: dict[str, list[tuple[float, int]]] = {"lfs": [], "theta": []}
                with limited_loopback(args.rate):
                    for run in range(args.repeat):
                        order = ("lfs", "theta") if run % 2 == 0 else ("theta", "lfs")
                        for tool in order:
                            runs[tool].append(timed_clone(spaces[tool], f"clone{run}", expected))
                for ws in spaces.values():
                    ws.cleanup()
            lfs_s = statistics.median(s for s, _ in runs["lfs"])
            theta_s = statistics.median(s for s, _ in runs["theta"])
            lfs_b, theta_b = runs["lfs"][0][1], runs["theta"][0][1]
            rows.append([dtype, mib(v2.stat().st_size), f"{lfs_s:.2f}", f"{theta_s:.2f}", f"{theta_s / lfs_s:.2f}x",
                         mib(lfs_b), mib(theta_b), f"{theta_b / lfs_b:.2f}x"])  # fmt: skip
    header = ["dtype", "checkpoint", "git-lfs clone (s)", "theta clone (s)", "ratio", "git-lfs received",
              "theta received", "ratio"]  # fmt: skip
    report = (
        f"# Fresh clone from an LFS server over HTTP ({args.size} MiB, v2: {LABELS[args.kind]})\n\n"
        f"Median of {args.repeat} clone(s) per tool through giftless on 127.0.0.1; loopback limit: {args.rate}.\n\n"
        f"{markdown_table(header, rows)}\n\n"
        f'Reproduce: `PATH="$PWD/.venv/bin:$PATH" .venv/bin/python bench/network.py --size {args.size}'
        f" --rate {args.rate} --kind {args.kind} --dtypes {' '.join(args.dtypes)} --repeat {args.repeat}`"
        f" ({time.perf_counter() - started:.0f} s for this run).\n"
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
