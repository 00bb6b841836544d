"""`git theta`: the command line.

Each subcommand lives in its own module under `theta.app.commands` and exposes
`register(add)`: it calls `add(name, handler, help)` and fills in the returned parser.
Modules are found by listing the package, so adding a command touches no shared table.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence

from theta import __version__
from theta.app import commands
from theta.errors import ThetaError

Handler = Callable[[argparse.Namespace], int]
AddCommand = Callable[..., argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="git theta", description="Version control for ML models, inside Git.")
    parser.add_argument("--version", action="version", version=f"theta {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help: str, plumbing: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=f"plumbing: {help}" if plumbing else help, description=help)
        p.set_defaults(handler=handler)
        return p

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ThetaError as exc:
        print(f"theta: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
