"""`git theta fetch [REV] [PATH ...]` and `git theta checkout [PATH ...]`."""

from __future__ import annotations

import argparse

from theta.git.repo import Repo


def cmd_fetch(args: argparse.Namespace) -> int:
    from theta.app.tracking import fetch

    return fetch(Repo(), args.rev, args.paths)


def cmd_checkout(args: argparse.Namespace) -> int:
    from theta.app.tracking import checkout

    for path in checkout(Repo(), args.paths):
        print(f"theta: checked out {path}")
    return 0


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add("fetch", cmd_fetch, "download the objects that tracked files need at a revision")
    p.add_argument("rev", nargs="?", default="HEAD")
    p.add_argument("paths", nargs="*")
    p = add("checkout", cmd_checkout, "write tracked files that were left as metadata (after installing a plugin)")
    p.add_argument("paths", nargs="*")
