"""`git theta diff [REV [REV]] [-- PATH ...]`: how tracked checkpoints changed, parameter by parameter."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from theta.errors import ThetaError

DEFAULT_FORMAT = "text"  # the renderer used unless --json, --format or `git config theta.diffFormat` says otherwise


def split_positionals(values: list[str], argv: list[str]) -> tuple[list[str], list[str]]:
    """Revisions and paths: what follows `--` on the command line is paths, the rest revisions."""
    if "--" in argv:
        after = argv[argv.index("--") + 1 :]
        if after and values[-len(after) :] == after:
            return values[: -len(after)], after
        if not after:
            return values, []
    return values, []


def cmd_diff(args: argparse.Namespace) -> int:
    from theta import models
    from theta.diffing import revisions
    from theta.diffing.engine import diff_file
    from theta.diffing.select import selector
    from theta.diffs import FileDiff, RenderOutput
    from theta.git.repo import Repo
    from theta.session import Session

    revs, paths = split_positionals(args.positionals, sys.argv[1:])
    session = Session(Repo())
    failures = 0
    try:
        registry = session.registry
        name = args.format or ("json" if args.json else session.repo.config("theta.diffFormat") or DEFAULT_FORMAT)
        renderer = registry.diff_renderer(name)
        target = Path(args.output) if args.output else None
        if renderer.writes_file and target is None:
            raise ThetaError(f"the {name!r} renderer writes a file: name it with --output FILE")
        plot = registry.diff_renderer("plot") if args.plot else None
        comparison = revisions.compare(session.repo, revs, args.cached, models.expand_paths(paths))
        pick = selector(args.params) if args.params else None
        sharded = models.diff_groups(session.repo, comparison)  # index file -> the shards one diff covers

        def diffs() -> Iterator[FileDiff]:
            nonlocal failures
            for index in sharded:
                try:
                    yield diff_file(index, *models.diff_sides(session, comparison, index), select=pick)
                except ThetaError as exc:
                    failures += 1
                    print(f"theta: error: {exc}", file=sys.stderr)
            grouped = {path for paths in sharded.values() for path in paths}
            for change in comparison.changes:
                if change.path in grouped or not revisions.is_tracked(session.repo, change):
                    continue
                try:
                    old, new = revisions.sides(session, comparison, change)
                    yield diff_file(change.path, old, new, select=pick)
                except ThetaError as exc:
                    failures += 1
                    print(f"theta: error: {exc}", file=sys.stderr)

        stream = sys.stdout
        output = RenderOutput(stream=stream, color=_color(args.color, stream), target=target)
        if plot is None:
            renderer.render(diffs(), output)
        else:
            collected = list(diffs())
            renderer.render(collected, output)
            plot.render(collected, RenderOutput(stream=stream, target=Path(args.plot)))
            print(f"theta: wrote {args.plot}", file=sys.stderr)
    finally:
        session.close()
    return 1 if failures else 0


def _color(choice: str, stream: object) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "diff",
        cmd_diff,
        "how tracked checkpoints changed, parameter by parameter, with figures",
        examples=[
            "git theta diff                                  # the working tree against the index",
            "git theta diff HEAD~1 HEAD -- model.safetensors",
            "git theta diff v1 v2 --params 'layers.0.*' --json",
            "git theta diff v1 v2 --plot diff.png",
        ],
    )
    p.add_argument(
        "positionals",
        nargs="*",
        metavar="REV [REV] [-- PATH ...]",
        help="none: the index against the working tree; one: it against the working tree; two, A..B or A...B",
    )
    p.add_argument("--cached", "--staged", action="store_true", help="compare with the index (HEAD by default)")
    p.add_argument("--params", nargs="+", action="extend", metavar="GLOB", help="only parameters these globs match")
    p.add_argument("--json", action="store_true", help="one JSON object per file (same as --format json)")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the relative change per layer into a PNG")
    p.add_argument("--format", metavar="NAME", help="the diff renderer to use (`git theta plugins` lists them)")
    p.add_argument("--output", "-o", metavar="FILE", help="the file a renderer that writes files writes")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
