"""`git theta merge-policy check [PATH ...] [--json]`."""

from __future__ import annotations

import argparse


def cmd_check(args: argparse.Namespace) -> int:
    from theta.merging.check import check
    from theta.session import Session

    session = Session()
    try:
        return check(session, args.paths, args.json)
    finally:
        session.close()


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "merge-policy",
        cmd_check,
        "check the merge policy (.theta/merge-policy.toml)",
        examples=["git theta merge-policy check", "git theta merge-policy check model.safetensors --json"],
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check", help="validate the policy; with checkpoints, show each parameter's rule and strategy"
    )
    check.add_argument("paths", nargs="*", metavar="PATH", help="checkpoints to show the policy's choices for")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(handler=cmd_check)
