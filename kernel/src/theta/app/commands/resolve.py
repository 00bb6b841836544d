"""`git theta resolve PATH [--strategy NAME] [--option KEY=VALUE ...] [--params GLOB ...] [--skeleton SIDE]`."""

from __future__ import annotations

import argparse


def cmd_resolve(args: argparse.Namespace) -> int:
    from theta.merging.resolve import resolve
    from theta.session import Session

    session = Session()
    try:
        return resolve(session, args.path, args.strategy, args.option, args.params, args.skeleton)
    finally:
        session.close()


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "resolve",
        cmd_resolve,
        "merge a conflicted checkpoint again, with a strategy for its conflicts",
        examples=[
            "git theta resolve model.safetensors --strategy average",
            "git theta resolve model.safetensors --strategy ties --option density=0.3 --params 'layers.*'",
        ],
    )
    p.add_argument("path", help="the conflicted checkpoint")
    p.add_argument("--strategy", help="the merge strategy for the conflicting parameters (default: the policy's)")
    p.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="an option of the strategy (TOML value)"
    )
    p.add_argument(
        "--params", action="append", default=[], metavar="GLOB", help="merge these parameters with --strategy"
    )
    p.add_argument("--skeleton", choices=("ours", "theirs", "base"), help="the side whose non-tensor state to keep")
