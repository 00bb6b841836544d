"""`git theta migrate PATTERN`: checkpoints committed with Git LFS become Theta's, without rewriting history."""

from __future__ import annotations

import argparse

from theta.git.repo import Repo


def cmd_migrate(args: argparse.Namespace) -> int:
    from theta.app.hooks import ensure_repo_hooks
    from theta.app.migration import migrate

    repo = Repo()
    if args.format:
        from theta.plugins import default_manager

        default_manager().registry.format(args.format)
    for line in migrate(repo, args.pattern, args.format):
        print(f"theta: {line}")
    ensure_repo_hooks(repo)
    return 0


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "migrate",
        cmd_migrate,
        "move files matching PATTERN from Git LFS to Theta: drop its Git LFS line, track it, re-add the"
        " checkpoints committed as Git LFS pointers (history is not rewritten; commit afterwards)",
        examples=["git theta migrate '*.safetensors' && git commit -m 'Track checkpoints with Theta'"],
    )
    p.add_argument("pattern")
    p.add_argument("--format", help="the checkpoint format, instead of detecting it from each file")
