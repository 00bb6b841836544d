"""`git theta track PATTERN [--format NAME]` and `git theta ls-files`."""

from __future__ import annotations

import argparse
import json
import sys

from theta.git.repo import Repo


def cmd_track(args: argparse.Namespace) -> int:
    from theta.app.hooks import ensure_repo_hooks
    from theta.app.tracking import track

    repo = Repo()
    if args.format:
        from theta.plugins import default_manager

        default_manager().registry.format(args.format)
    changed = track(repo, args.pattern, args.format)
    ensure_repo_hooks(repo)
    if repo.config("filter.theta.process") is None:
        print("theta: warning: the theta filter is not configured; run `git theta install`", file=sys.stderr)
    print(f"theta: {'tracking' if changed else 'already tracking'} {args.pattern!r}")
    return 0


def cmd_ls_files(args: argparse.Namespace) -> int:
    from theta.app.tracking import storage_history, tracked_files

    repo = Repo()
    if args.json:
        from theta.app.tracking import storage_records

        rows = [{"path": p} | ({"history": storage_records(repo, p)} if args.long else {}) for p in tracked_files(repo)]
        print(json.dumps(rows, indent=2))
        return 0
    for path in tracked_files(repo):
        print(path)
        if args.long:
            for line in storage_history(repo, path):
                print(f"  {line}")
    return 0


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "track",
        cmd_track,
        "track files matching PATTERN with Theta (writes .gitattributes)",
        examples=["git theta track '*.safetensors'", "git theta track 'exports/*.bin' --format pytorch"],
    )
    p.add_argument("pattern")
    p.add_argument("--format", help="the checkpoint format, instead of detecting it from each file")
    p = add(
        "ls-files",
        cmd_ls_files,
        "list the files Theta tracks",
        examples=["git theta ls-files", "git theta ls-files --long --json"],
    )
    p.add_argument("--long", "-l", action="store_true", help="with the bytes of new objects each commit added")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
