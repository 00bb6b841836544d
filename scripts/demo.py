"""`make demo`: Theta in a temporary repository, step by step, with the commands shown.

Tracks a small transformer-like safetensors checkpoint, commits two versions (the second a
fine-tune that touched two tensors), shows what each version cost in storage, shows the
parameter-level diff, and checks the first version out again, byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "kernel" / "src"))

from synthetic import make_model  # noqa: E402

from theta.testing import setup_git_home  # noqa: E402

MODEL = "model.safetensors"


def shell(work: Path, env: dict[str, str], *args: str, show: bool = True) -> str:
    if show:
        print(f"$ {' '.join(args)}", flush=True)
    proc = subprocess.run(list(args), cwd=work, env=env, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if show and output:
        print("\n".join("  " + line for line in output.splitlines()[:14]))
    if proc.returncode != 0:
        raise SystemExit(f"demo failed at: {' '.join(args)}")
    return proc.stdout


def store_bytes(work: Path) -> int:
    return sum(p.stat().st_size for p in (work / ".git" / "lfs" / "objects").rglob("*") if p.is_file())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="theta-demo-"))
    try:
        env = setup_git_home(tmp / "home")
        work = tmp / "project"
        work.mkdir()
        print(f"A fresh repository in {work} (HOME is isolated; `git theta install` already ran there)\n")
        shell(work, env, "git", "init", "-q", "-b", "main")
        shell(work, env, "git", "theta", "track", "*.safetensors")

        model = make_model(64 * 2**20)
        save_file(model, str(work / MODEL))
        size = (work / MODEL).stat().st_size
        print(f"\n# v1: a {size / 2**20:.0f} MiB checkpoint with {len(model)} tensors")
        shell(work, env, "git", "add", MODEL)
        shell(work, env, "git", "commit", "-q", "-m", "v1: pretrained")
        v1_hash, v1_store = sha(work / MODEL), store_bytes(work)
        print(f"  storage after v1: {v1_store / 2**20:.1f} MiB of Git LFS objects")
        stored = shell(work, env, "git", "show", f"HEAD:{MODEL}", show=False)
        print(f"  git itself stores a {len(stored) / 1024:.0f} KiB metadata file; its start:")
        print("\n".join("    " + line for line in stored.splitlines()[:8]))

        print("\n# v2: a fine-tune that changed 2 of the tensors")
        model["layers.0.attn.q.weight"] = model["layers.0.attn.q.weight"] * np.float32(1.01)
        model["layers.5.mlp.up.weight"][:8] += np.float32(0.5)
        save_file(model, str(work / MODEL))
        shell(work, env, "git", "diff")
        shell(work, env, "git", "commit", "-q", "-am", "v2: fine-tuned")
        added = store_bytes(work) - v1_store
        print(f"  storage added by v2: {added / 1024:.1f} KiB ({added / size:.2%} of the file; Git LFS: 100%)")
        shell(work, env, "git", "theta", "ls-files", "--long")

        print("\n# back to v1")
        shell(work, env, "git", "checkout", "-q", "HEAD~1")
        same = sha(work / MODEL) == v1_hash
        print(f"  checked-out file is byte-identical to v1: {same}")
        shell(work, env, "git", "status", "--short")
        if not same:
            raise SystemExit("demo failed: checkout is not exact")
        print("\nDone.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
