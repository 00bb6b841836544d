"""`git theta run-hook NAME SCRIPT ARGS...`: called by the line Theta asks to add to a shared hook."""

from __future__ import annotations

import argparse


def cmd_run_hook(args: argparse.Namespace) -> int:
    from theta.app.hooks import run_hook

    return run_hook(args.name, args.script, args.args)


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "run-hook",
        cmd_run_hook,
        "Theta's step of a hook in a shared hooks directory, then the hook itself (called by that hook)",
        plumbing=True,
        examples=['[ -n "$THETA_HOOK_RAN" ] || exec git-theta run-hook pre-push "$0" "$@"   # in .githooks/pre-push'],
    )
    p.add_argument("name", choices=["pre-push", "post-commit"])
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
