"""The commands git and the hooks call: filter-process, pre-push, post-commit, merge, diff-textconv."""

from __future__ import annotations

import argparse
import sys

from theta.git.repo import Repo


def cmd_filter_process(args: argparse.Namespace) -> int:
    from theta.app.filter_process import main

    return main(skip_smudge=args.skip_smudge)


def cmd_pre_push(args: argparse.Namespace) -> int:
    from theta.app.prepush import pre_push

    return pre_push(args.remote, sys.stdin.read().splitlines())


def cmd_post_commit(args: argparse.Namespace) -> int:
    from theta.next_commit import clear_squash_requests

    clear_squash_requests(Repo())
    return 0


def cmd_diff_textconv(args: argparse.Namespace) -> int:
    from theta.app.diff_driver import textconv

    sys.stdout.write(textconv(args.file))
    return 0


def cmd_diff_driver(args: argparse.Namespace) -> int:
    from theta.app.diff_driver import run

    return run(args.args)


def cmd_merge(args: argparse.Namespace) -> int:
    from theta.app.merge_driver import merge

    return merge(args.base, args.ours, args.theirs, args.path)


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "filter-process",
        cmd_filter_process,
        "git's long-running filter (called by git)",
        plumbing=True,
        examples=["git config filter.theta.process 'git-theta filter-process'   # what git theta install writes"],
    )
    p.add_argument("--skip-smudge", action="store_true", help="leave metadata files in place on checkout")
    p = add(
        "pre-push",
        cmd_pre_push,
        "push the objects of pushed commits (called by the pre-push hook)",
        plumbing=True,
        examples=['git-theta pre-push "$@"   # in .git/hooks/pre-push, with git\'s ref lines on standard input'],
    )
    p.add_argument("remote")
    p.add_argument("url", nargs="?")
    add(
        "post-commit",
        cmd_post_commit,
        "clears squash requests (called by the post-commit hook)",
        plumbing=True,
        examples=["git-theta post-commit   # in .git/hooks/post-commit"],
    )
    p = add(
        "diff-textconv",
        cmd_diff_textconv,
        "one version of a checkpoint as text (called by git log -p, git show)",
        plumbing=True,
        examples=["git config diff.theta.textconv 'git-theta diff-textconv --'"],
    )
    p.add_argument("file")
    p = add(
        "diff-driver",
        cmd_diff_driver,
        "the per-parameter diff of a checkpoint (called by git diff)",
        plumbing=True,
        examples=["git config diff.theta.command 'git-theta diff-driver --'"],
    )
    p.add_argument("args", nargs="*", help="git's: path old-file old-hex old-mode new-file new-hex new-mode")
    p = add(
        "merge",
        cmd_merge,
        "merge driver (called by git)",
        plumbing=True,
        examples=["git config merge.theta.driver 'git-theta merge %O %A %B %P'   # what git theta install writes"],
    )
    p.add_argument("base")
    p.add_argument("ours")
    p.add_argument("theirs")
    p.add_argument("path")
