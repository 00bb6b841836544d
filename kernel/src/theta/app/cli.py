"""`git theta`: the command line, behaving as git's own tools do.

Each subcommand lives in its own module under `theta.app.commands` and exposes
`register(add)`: it calls `add(name, handler, help, ...)` and fills in the returned parser.
Modules are found by listing the package, so adding a command touches no shared table.

What every command gets from here: `-h` with examples, `-q/--quiet`, "did you mean" for a
mistyped command, one plain line for an error (outside a repository, git missing, a
`ThetaError`), a quiet exit when the reader of its output goes away, and the exit codes of
`EXIT_STATUS` (documented in docs/cli.md and the man page).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import pkgutil
import shutil
import sys
from collections.abc import Callable, Sequence

from theta import __version__
from theta.app import commands
from theta.errors import ThetaError
from theta.progress import QUIET_ENV

Handler = Callable[[argparse.Namespace], int]
AddCommand = Callable[..., argparse.ArgumentParser]

PROG = "git theta"
DESCRIPTION = "Version control for ML models, inside Git: checkpoints tracked parameter by parameter."
EXIT_STATUS: tuple[tuple[int, str], ...] = (
    (0, "success (for `merge`: merged cleanly)"),
    (1, "an error, said in one line on stderr (for `merge`: a conflict was left to resolve)"),
    (2, "the command line was wrong (an unknown option, a missing argument)"),
    (130, "interrupted (Ctrl-C)"),
    (141, "the reader of the output went away (e.g. `| head`), as git does"),
)
ENVIRONMENT: tuple[tuple[str, str], ...] = (
    (QUIET_ENV, "when set (not `0`), no progress is shown; `git theta -q` sets it for the git commands it runs"),
    ("GIT_PROGRESS_DELAY", "seconds of work before a progress line appears on a terminal (default 2), as in git"),
    ("GIT_THETA_CHECKPOINT_TYPE", "the checkpoint format for this command, instead of detecting it from each file"),
    ("THETA_TRACE", "when set (not `0`), the filter process reports on stderr how long each file took"),
)
NOT_A_REPOSITORY = "not in a git repository: run `{command}` inside one (`git init` makes one)"
GIT_MISSING = "git was not found on PATH: install git (e.g. `apt-get install git`) and try again"


class Quiet(argparse.Action):
    """`-q/--quiet`: no progress, here and in the git commands this one runs (they inherit it)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS, help=kwargs.get("help"))  # type: ignore[arg-type]

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[no-untyped-def]
        os.environ[QUIET_ENV] = "1"


def examples_epilog(examples: Sequence[str]) -> str | None:
    if not examples:
        return None
    return "examples:\n" + "\n".join(f"  {line}" for line in examples)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="`git theta help COMMAND` (or `git theta COMMAND -h`) shows a command's options and examples;"
        " `git help theta` the manual.",
    )
    parser.add_argument("--version", action="version", version=f"theta {__version__}")
    parser.add_argument("-q", "--quiet", action=Quiet, help="show no progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        handler: Handler,
        help: str,
        plumbing: bool = False,
        examples: Sequence[str] = (),
        needs_repo: bool | None = None,
    ) -> argparse.ArgumentParser:
        """A subcommand. `needs_repo` (default: True unless plumbing) checks for a repository first."""
        p = sub.add_parser(
            name,
            help=f"plumbing: {help}" if plumbing else help,
            description=help,
            epilog=examples_epilog(examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            conflict_handler="resolve",
        )
        p.add_argument("-q", "--quiet", action=Quiet, help="show no progress")
        p.set_defaults(
            handler=handler, needs_repo=not plumbing if needs_repo is None else needs_repo, plumbing=plumbing
        )
        return p

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(add)
    sub._choices_actions.sort(key=lambda a: bool(a.help and a.help.startswith("plumbing: ")))
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser by name, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def is_plumbing(parser: argparse.ArgumentParser) -> bool:
    return bool(parser.get_default("plumbing"))


def unknown_command(name: str, known: Sequence[str]) -> str:
    """What git says for a mistyped command, with the closest commands as suggestions."""
    lines = [f"{PROG}: '{name}' is not a theta command. See '{PROG} --help'."]
    similar = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if not similar:
        similar = [k for k in known if k.startswith(name) or name.startswith(k)][:3]
    if similar:
        lines += ["", "The most similar command is" if len(similar) == 1 else "The most similar commands are"]
        lines += [f"\t{s}" for s in similar]
    return "\n".join(lines)


def first_command(argv: Sequence[str]) -> str | None:
    """The subcommand argv names (top-level options take no values), or None."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def inside_repository() -> bool:
    from theta.app.repo_state import inside_repo

    return inside_repo()


def _quiet_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so that the interpreter's last flush says nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# NumPy's bundled OpenBLAS starts a thread per core when NumPy is imported, and they spin for a
# while (about 0.08 s of CPU per process on 2 cores). Theta runs its own worker threads, and git runs a
# filter, a driver or git-lfs beside it: one BLAS thread leaves the cores to them.
BLAS_THREADS_ENV = "OPENBLAS_NUM_THREADS"


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault(BLAS_THREADS_ENV, "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        named = first_command(argv)
        known = subcommands(parser)
        if named is not None and named not in known:
            print(unknown_command(named, [n for n, p in known.items() if not is_plumbing(p)]), file=sys.stderr)
            return 1
        args = parser.parse_args(argv)
        if shutil.which("git") is None:
            raise ThetaError(GIT_MISSING)
        if args.needs_repo and not inside_repository():
            raise ThetaError(NOT_A_REPOSITORY.format(command=f"{PROG} {args.command}"))
        args.root_parser = parser
        status = args.handler(args)
        sys.stdout.flush()
        return status
    except ThetaError as exc:
        print(f"theta: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except KeyboardInterrupt:
        return 130
    except FileNotFoundError as exc:
        if exc.filename == "git" or (exc.filename is None and "'git'" in str(exc)):
            print(f"theta: error: {GIT_MISSING}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
