"""`git theta track PATTERN [--format NAME]` and `git theta ls-files`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from theta.errors import ThetaError
from theta.git.repo import Repo


def cmd_track(args: argparse.Namespace) -> int:
    from theta.app.hooks import ensure_repo_hooks
    from theta.app.tracking import track

    repo = Repo()
    if args.format:
        from theta.plugins import default_manager

        default_manager().registry.format(args.format)
    from theta.app.tracking import huggingface_patterns, lfs_warnings

    if (args.pattern is None) == (args.huggingface is None):
        raise ThetaError("give a PATTERN or --huggingface DIR")
    patterns = [args.pattern] if args.pattern is not None else huggingface_patterns(repo, Path(args.huggingface))
    for pattern in patterns:
        changed = track(repo, pattern, args.format)
        print(f"theta: {'tracking' if changed else 'already tracking'} {pattern!r}")
        for warning in lfs_warnings(repo, pattern):
            print(f"theta: warning: {warning}", file=sys.stderr)
    if args.huggingface:
        print("theta: config, tokenizer and index files stay ordinary git files; `git add` the directory now")
    ensure_repo_hooks(repo)
    if repo.config("filter.theta.process") is None:
        print("theta: warning: the theta filter is not configured; run `git theta install`", file=sys.stderr)
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
        examples=[
            "git theta track '*.safetensors'",
            "git theta track 'exports/*.bin' --format pytorch",
            "git theta track --huggingface models/my-model   # a save_pretrained directory, sharded or not",
        ],
    )
    p.add_argument("pattern", nargs="?")
    p.add_argument(
        "--huggingface",
        metavar="DIR",
        help="track the weights of a directory written by save_pretrained (shards and all), not its text files",
    )
    p.add_argument("--format", help="the checkpoint format, instead of detecting it from each file")
    p = add(
        "ls-files",
        cmd_ls_files,
        "list the files Theta tracks",
        examples=["git theta ls-files", "git theta ls-files --long --json"],
    )
    p.add_argument("--long", "-l", action="store_true", help="with the bytes of new objects each commit added")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
