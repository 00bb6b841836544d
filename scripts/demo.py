"""`make demo`: the story of the Git-Theta paper, on a small real model, in a temporary repository.

A tiny GPT-2 (built by transformers from a config, never downloaded) is pre-trained, then
fine-tuned, then adapted with a LoRA whose factors Theta stores as they are; a branch tunes
its layer norms while main tunes them too; the branch is merged back with a merge policy
(`.theta/merge-policy.toml`); `git theta diff` and `git theta log` show what each step changed
and stored; and the first version is checked out again, byte for byte. Each step shows its
commands and their output.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "kernel" / "src"))

from theta.sizes import human  # noqa: E402
from theta.testing import setup_git_home  # noqa: E402

MODEL = "gpt2-tiny"
SHARD_SIZE = "2MB"  # small enough that save_pretrained writes several shards and an index
POLICY = """\
version = 1
default = { strategy = "fail" }

[[rules]]
params = ["*.ln_*"]
strategy = "average"
options = { weight = 0.5 }

[[rules]]
params = ["*"]
strategy = "ties"
options = { density = 0.5 }
"""
TEXT = "the model is versioned in git parameter by parameter and only what changed is stored again " * 8


def shell(work: Path, env: dict[str, str], *args: str, lines: int = 16) -> str:
    if lines:
        print(f"$ {' '.join(args)}", flush=True)
    proc = subprocess.run(list(args), cwd=work, env=env, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).rstrip()
    shown = output.splitlines()
    for line in shown[:lines]:
        print("  " + line)
    if lines and len(shown) > lines:
        print(f"  ... ({len(shown) - lines} more lines)")
    if proc.returncode != 0:
        raise SystemExit(f"demo failed at: {' '.join(args)}")
    return proc.stdout


STARTED = time.monotonic()


def step(title: str) -> None:
    print(f"\n## {title}   [{time.monotonic() - STARTED:.0f} s]\n", flush=True)


def store_bytes(work: Path) -> int:
    return sum(p.stat().st_size for p in (work / ".git" / "lfs" / "objects").rglob("*") if p.is_file())


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def train(model, steps: int, only: str | None = None, seed: int = 0, lr: float = 1e-3) -> None:  # type: ignore[no-untyped-def]
    """A few AdamW steps of next-token prediction on TEXT (bytes as tokens); `only` limits what trains."""
    import torch

    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        p.requires_grad_(only is None or only in name)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    tokens = torch.tensor(list(TEXT.encode()[:128]))[None] % model.config.vocab_size
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(tokens, labels=tokens).loss.backward()
        optimizer.step()
    model.eval()


def main() -> None:
    started = time.monotonic()
    import peft
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="theta-demo-"))
    try:
        env = {**setup_git_home(tmp / "home"), "GIT_THETA_QUIET": "1"}
        work = tmp / "project"
        work.mkdir()
        model_dir = work / MODEL
        print(f"A fresh repository in {work} (its HOME is isolated; `git theta install` ran there).")
        shell(work, env, "git", "init", "-q", "-b", "main")

        step("1. Pre-train a small GPT-2 and commit it as save_pretrained writes it")
        torch.manual_seed(0)
        config = transformers.GPT2Config(n_layer=4, n_embd=128, n_head=4, vocab_size=256, n_positions=256)
        model = transformers.GPT2LMHeadModel(config)
        train(model, steps=8, lr=3e-3)
        model.save_pretrained(model_dir, max_shard_size=SHARD_SIZE)
        shards = sorted(p.name for p in model_dir.glob("*.safetensors"))
        print(f"{sum(p.numel() for p in model.parameters()):,} parameters in {len(shards)} shards: {', '.join(shards)}")
        shell(work, env, "git", "theta", "track", "--huggingface", MODEL)
        shell(work, env, "git", "add", ".")
        shell(work, env, "git", "commit", "-q", "-m", "pre-trained")
        first = digests(model_dir)
        size = sum((model_dir / s).stat().st_size for s in shards)
        print(f"\nThe weights are {size / 2**20:.1f} MiB; git stores a small metadata file per shard:")
        shell(work, env, "git", "show", f"HEAD:{MODEL}/{shards[0]}", lines=7)
        shell(work, env, "git", "theta", "log", "-n", "1")

        step("2. Fine-tune every weight: each tensor changed, so each is stored again (as an exact update if smaller)")
        train(model, steps=5, seed=1, lr=1e-4)
        model.save_pretrained(model_dir, max_shard_size=SHARD_SIZE)
        before = store_bytes(work)
        shell(work, env, "git", "commit", "-q", "-am", "fine-tuned")
        print(f"stored {(store_bytes(work) - before) / 2**20:.2f} MiB for {size / 2**20:.1f} MiB of weights")
        shell(work, env, "git", "theta", "log", "-n", "1")

        step("3. Adapt with a LoRA (PEFT), merge it, and give Theta the adapter: it stores the factors")
        lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True)
        wrapped = peft.get_peft_model(model, lora)
        train(wrapped, steps=10, only="lora_", seed=2, lr=3e-3)
        wrapped.save_pretrained(tmp / "adapter")
        model = wrapped.merge_and_unload()
        model.save_pretrained(model_dir, max_shard_size=SHARD_SIZE)
        print(f"the adapter, as PEFT wrote it: {', '.join(sorted(p.name for p in (tmp / 'adapter').iterdir()))}")
        before = store_bytes(work)
        shell(
            work, env, "git", "theta", "add", MODEL, "--update-type", "low-rank", "--update-data", str(tmp / "adapter")
        )
        shell(work, env, "git", "commit", "-q", "-m", "LoRA on attention, merged")
        added = store_bytes(work) - before
        print(f"stored {added / 1024:.0f} KiB: the rank-4 factors of each attention weight, plus an exact residual")
        shell(work, env, "git", "theta", "diff", "HEAD~1", "HEAD", "--params", "transformer.h.0.*", lines=8)

        step("4. Branch: tune the layer norms on a branch, and on main too")
        shell(work, env, "git", "checkout", "-q", "-b", "norms")
        other = copy.deepcopy(model)
        train(other, steps=5, only="ln_", seed=3, lr=1e-2)
        other.save_pretrained(model_dir, max_shard_size=SHARD_SIZE)
        branch = {k: v.clone() for k, v in other.state_dict().items()}
        shell(work, env, "git", "commit", "-q", "-am", "tune layer norms")
        shell(work, env, "git", "checkout", "-q", "main")
        train(model, steps=5, only="ln_", seed=4, lr=1e-2)
        model.save_pretrained(model_dir, max_shard_size=SHARD_SIZE)
        ours = {k: v.clone() for k, v in model.state_dict().items()}
        shell(work, env, "git", "commit", "-q", "-am", "tune layer norms differently")

        step("5. Merge the branch back with a policy: layer norms both sides changed are averaged")
        (work / ".theta").mkdir()
        (work / ".theta" / "merge-policy.toml").write_text(POLICY)
        print(POLICY)
        shell(work, env, "git", "add", ".theta/merge-policy.toml")
        shell(work, env, "git", "commit", "-q", "-m", "merge policy")
        shell(work, env, "git", "merge", "--no-edit", "norms")
        merged = transformers.GPT2LMHeadModel.from_pretrained(model_dir).state_dict()
        name = "transformer.h.0.ln_1.weight"
        expected = ((ours[name].float() + branch[name].float()) / 2).to(ours[name].dtype)
        print(f"{name}: merged = average of both sides: {torch.allclose(merged[name], expected, atol=1e-6)}")
        shell(work, env, "git", "theta", "log", "-n", "1", lines=12)

        step("6. What changed, and what it cost")
        shell(work, env, "git", "theta", "diff", "HEAD~1", "HEAD", "--params", "transformer.h.0.*", lines=10)
        log = shell(work, env, "git", "theta", "log", "--json", lines=0)
        print(f"\n  {'commit':<30} {'changed':>7} {'added':>5}  {'stored':>10}  update types")
        total = 0
        for entry in map(json.loads, reversed(log.splitlines())):
            for f in entry["files"]:
                total += f["stored_bytes"]
                kinds = ", ".join(f"{k} {n}" for k, n in f["updates"].items())
                stored = human(f["stored_bytes"])
                print(f"  {entry['subject'][:30]:<30} {f['changed']:>7} {f['added']:>5}  {stored:>10}  {kinds}")
        commits = len(log.splitlines())
        print(
            f"\n  Theta stored {human(total)} for {commits} versions; Git LFS stores every version whole:"
            f" {human(commits * size)}"
        )

        step("7. Back to the first version, byte for byte")
        first_commit = shell(work, env, "git", "rev-list", "--max-parents=0", "HEAD").strip()
        shell(work, env, "git", "checkout", "-q", first_commit)
        same = digests(model_dir) == first
        print(f"every file of {MODEL}/ is byte-identical to the pre-trained save: {same}")
        reloaded = transformers.GPT2LMHeadModel.from_pretrained(model_dir)
        print(f"from_pretrained loads it: {sum(p.numel() for p in reloaded.parameters()):,} parameters")
        shell(work, env, "git", "status", "--short")
        if not same:
            raise SystemExit("demo failed: the checkout is not exact")
        print(f"\nDone in {time.monotonic() - started:.0f} s.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
