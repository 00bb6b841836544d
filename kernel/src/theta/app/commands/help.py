"""`git theta help [COMMAND]`: the help of Theta or of one command, without a manual viewer."""

from __future__ import annotations

import argparse

from theta.errors import ThetaError


def cmd_help(args: argparse.Namespace) -> int:
    from theta.app.cli import subcommands, unknown_command

    root: argparse.ArgumentParser = args.root_parser
    if not args.topic:
        root.print_help()
        return 0
    known = subcommands(root)
    if args.topic not in known:
        raise ThetaError(unknown_command(args.topic, sorted(known)).replace("\n\n", " ").replace("\n\t", " "))
    known[args.topic].print_help()
    return 0


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "help",
        cmd_help,
        "show the help of Theta or of one command (`git help theta` shows the manual)",
        examples=["git theta help track", "git theta help"],
        needs_repo=False,
    )
    p.add_argument("topic", nargs="?", metavar="COMMAND")
