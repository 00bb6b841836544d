"""`git theta add` (choosing how changed parameters are stored) and `git theta squash`."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from theta.errors import ThetaError
from theta.git.repo import Repo


def cmd_add(args: argparse.Namespace) -> int:
    settings = []
    if args.update_type:
        settings += ["-c", f"theta.updateType={args.update_type}"]
    if args.update_data:
        data = Path(args.update_data).resolve()
        if not data.exists():
            raise ThetaError(f"update data {args.update_data} does not exist")
        settings += ["-c", f"theta.updateData={data}"]
    proc = subprocess.run(["git", *settings, "add", "--", *args.paths])
    return proc.returncode


def cmd_squash(args: argparse.Namespace) -> int:
    from theta.next_commit import request_squash

    repo = Repo()
    paths = [_tracked_path(repo, path) for path in args.paths]
    request_squash(repo, paths)
    print(f"theta: the next commit stores {', '.join(args.paths)} as dense versions; `git add` them now")
    return 0


def _tracked_path(repo: Repo, given: str) -> str:
    from theta.app.tracking import work_tree_path

    path = work_tree_path(repo, given)
    if not Path(given).exists():
        raise ThetaError(f"{given}: no such file")
    if not Path(given).is_file():
        raise ThetaError(f"{given}: not a file: name each checkpoint to squash")
    if not repo.tracked_paths([given]):
        raise ThetaError(f"{given}: not tracked with Theta: `git theta track` a pattern that matches it first")
    return path


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "add",
        cmd_add,
        "git add, choosing how changed parameters are stored",
        examples=[
            "git theta add model.safetensors --update-type sparse",
            "git theta add model.safetensors --update-type low-rank --update-data lora-adapter/",
        ],
    )
    p.add_argument("paths", nargs="+")
    p.add_argument("--update-type", help="store changed parameters with this update type (e.g. sparse, low-rank, ia3)")
    p.add_argument(
        "--update-data",
        help="update data: a PEFT LoRA adapter (its directory or adapter_model.safetensors), or a checkpoint"
        " with '<parameter>.<array>' keys (LoRA factors, IA3 scales)",
    )
    p = add(
        "squash",
        cmd_squash,
        "make the next commit store these files as dense versions (history is not rewritten)",
        examples=["git theta squash model.safetensors && git add model.safetensors && git commit -m squash"],
    )
    p.add_argument("paths", nargs="+")
