"""`git theta fetch [REV] [PATH ...] [--params GLOB ...]` and `git theta checkout [PATH ...]`."""

from __future__ import annotations

import argparse
import os

from theta.git.repo import Repo

SKIP_FLAG = " --skip-smudge"


def cmd_fetch(args: argparse.Namespace) -> int:
    from theta.app.tracking import fetch

    return fetch(Repo(), args.rev, args.paths, args.params)


def smudge_for_real(repo: Repo) -> None:
    """Make the checkouts this command runs write checkpoints, even in a lazy clone.

    `GIT_LFS_SKIP_SMUDGE` is dropped, and a filter configured with `--skip-smudge` is run
    without it (through git's `GIT_CONFIG_COUNT` variables, which reach every git this
    process starts).
    """
    os.environ.pop("GIT_LFS_SKIP_SMUDGE", None)
    configured = repo.config("filter.theta.process") or ""
    if configured.endswith(SKIP_FLAG):
        count = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
        os.environ[f"GIT_CONFIG_KEY_{count}"] = "filter.theta.process"
        os.environ[f"GIT_CONFIG_VALUE_{count}"] = configured.removesuffix(SKIP_FLAG)
        os.environ["GIT_CONFIG_COUNT"] = str(count + 1)


def cmd_checkout(args: argparse.Namespace) -> int:
    from theta.app.tracking import checkout

    repo = Repo()
    smudge_for_real(repo)
    for path in checkout(repo, args.paths):
        print(f"theta: checked out {path}")
    return 0


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "fetch",
        cmd_fetch,
        "download the objects that tracked files need at a revision (works without a checkout)",
        examples=["git theta fetch", "git theta fetch v1 model.safetensors --params 'layers.0.*'"],
    )
    p.add_argument("rev", nargs="?", default="HEAD")
    p.add_argument("paths", nargs="*")
    p.add_argument(
        "--params", nargs="+", action="extend", metavar="GLOB", help="only the objects of these parameters' chains"
    )
    p = add(
        "checkout",
        cmd_checkout,
        "write tracked files that were left as metadata (a lazy clone, or after installing a plugin)",
        examples=["GIT_LFS_SKIP_SMUDGE=1 git clone URL model && cd model && git theta checkout model.safetensors"],
    )
    p.add_argument("paths", nargs="*")
