"""`git theta fsck [--all | REV...] [--remote] [--repair]`."""

from __future__ import annotations

import argparse

from theta.errors import ThetaError
from theta.git.repo import Repo


def cmd_fsck(args: argparse.Namespace) -> int:
    from theta.app.fsck import fsck

    if args.all and args.revs:
        raise ThetaError("give either --all or revisions, not both")
    return fsck(Repo(), args.revs, args.all, args.remote, args.repair)


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "fsck",
        cmd_fsck,
        "check that every object the checkpoints of some commits need is there and sound (exit 0 only then)",
        examples=[
            "git theta fsck                      # the checkpoints of HEAD, in the local store",
            "git theta fsck --all --remote       # every reachable commit, here and on the remote",
            "git theta fsck v1.0 main --repair   # fetch or rebuild what is missing or damaged",
        ],
    )
    p.add_argument("revs", nargs="*", metavar="REV", help="the commits to check (default: HEAD)")
    p.add_argument("--all", action="store_true", help="every commit reachable from a ref, a reflog or the index")
    p.add_argument("--remote", action="store_true", help="also check the remote's copies (downloads each object)")
    p.add_argument(
        "--repair", action="store_true", help="fetch from the remote, or rebuild from the work tree, what can be"
    )
