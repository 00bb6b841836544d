"""The commands git and the hooks call: filter-process, pre-push, post-commit, merge, diff-textconv."""

from __future__ import annotations

import argparse
import sys

from theta.git.repo import Repo


def cmd_filter_process(args: argparse.Namespace) -> int:
    from theta.app.filter_process import main

    return main()


def cmd_pre_push(args: argparse.Namespace) -> int:
    from theta.app.prepush import pre_push

    return pre_push(args.remote, sys.stdin.read().splitlines())


def cmd_post_commit(args: argparse.Namespace) -> int:
    from theta.next_commit import clear_squash_requests

    clear_squash_requests(Repo())
    return 0


def cmd_diff_textconv(args: argparse.Namespace) -> int:
    from theta.app.drivers import textconv

    sys.stdout.write(textconv(args.file))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from theta.app.merge_driver import merge

    return merge(args.base, args.ours, args.theirs, args.path)


def register(add) -> None:  # type: ignore[no-untyped-def]
    add("filter-process", cmd_filter_process, "git's long-running filter (called by git)", plumbing=True)
    p = add("pre-push", cmd_pre_push, "push the objects of pushed commits (called by the pre-push hook)", plumbing=True)
    p.add_argument("remote")
    p.add_argument("url", nargs="?")
    add("post-commit", cmd_post_commit, "clears squash requests (called by the post-commit hook)", plumbing=True)
    p = add("diff-textconv", cmd_diff_textconv, "a checkpoint as text for `git diff` (called by git)", plumbing=True)
    p.add_argument("file")
    p = add("merge", cmd_merge, "merge driver (called by git)", plumbing=True)
    p.add_argument("base")
    p.add_argument("ours")
    p.add_argument("theirs")
    p.add_argument("path")
