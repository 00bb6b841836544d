"""`git theta gc [--dry-run]`."""

from __future__ import annotations

import argparse

from theta.git.repo import Repo


def cmd_gc(args: argparse.Namespace) -> int:
    from theta.app.gc import gc

    return gc(Repo(), args.dry_run)


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "gc",
        cmd_gc,
        "remove local objects that no reachable commit, reflog entry, stash or the index needs",
        examples=["git theta gc --dry-run   # list them, with sizes and the total", "git theta gc"],
    )
    p.add_argument("-n", "--dry-run", action="store_true", help="list what would be removed, remove nothing")
