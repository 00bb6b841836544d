"""`git theta install` / `uninstall`: git's filter, diff and merge drivers, and the hooks."""

from __future__ import annotations

import argparse

from theta.app.repo_state import inside_repo
from theta.errors import ThetaError
from theta.git.repo import Repo


def cmd_install(args: argparse.Namespace) -> int:
    from theta.app.install import install

    scope = "local" if args.local else "system" if args.system else "global"
    repo = Repo() if inside_repo() else None
    if scope == "local" and repo is None:
        raise ThetaError("`git theta install --local` must run inside a git repository")
    for line in install(scope, repo, skip_smudge=args.skip_smudge):
        print(f"theta: {line}")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from theta.app.install import uninstall

    scope = "local" if args.local else "global"
    repo = Repo() if inside_repo() else None
    if scope == "local" and repo is None:
        raise ThetaError("`git theta uninstall --local` must run inside a git repository")
    for line in uninstall(scope, repo):
        print(f"theta: {line}")
    return 0


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "install",
        cmd_install,
        "configure git for Theta (global by default) and install the repository's hooks",
        examples=["git theta install", "git theta install --local"],
        needs_repo=False,
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--local", action="store_true", help="configure this repository only")
    scope.add_argument("--system", action="store_true", help="configure every user of this machine")
    p.add_argument(
        "--skip-smudge",
        action="store_true",
        help="checkouts and clones leave metadata files in place and fetch nothing (later: git theta fetch / checkout)",
    )
    p = add(
        "uninstall",
        cmd_uninstall,
        "remove Theta's git configuration (global by default) and, with --local, the repository's hooks",
        examples=["git theta uninstall --local", "git theta uninstall"],
        needs_repo=False,
    )
    p.add_argument("--local", action="store_true", help="this repository: its configuration and Theta's hooks")
