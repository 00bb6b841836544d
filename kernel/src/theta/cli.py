"""`git theta`: the command line. Each subcommand is a small function over the kernel's modules."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from theta import __version__
from theta.errors import ThetaError
from theta.git.repo import Repo, run_git

Handler = Callable[[argparse.Namespace], int]


def cmd_install(args: argparse.Namespace) -> int:
    from theta.git.install import install

    scope = "local" if args.local else "system" if args.system else "global"
    repo = Repo() if _inside_repo() else None
    if scope == "local" and repo is None:
        raise ThetaError("`git theta install --local` must run inside a git repository")
    for line in install(scope, repo):
        print(f"theta: {line}")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from theta.git.install import uninstall

    uninstall("local" if args.local else "global", Repo() if _inside_repo() else None)
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    from theta.git.hooks import ensure_repo_hooks
    from theta.tracking import track

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
    from theta.tracking import storage_history, tracked_files

    repo = Repo()
    for path in tracked_files(repo):
        print(path)
        if args.long:
            for line in storage_history(repo, path):
                print(f"  {line}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from theta.plugins import default_manager

    manager = default_manager()
    try:
        registry = manager.registry
        registry_error = None
    except ThetaError as exc:
        registry, registry_error = None, str(exc)
    rows = []
    for record in manager.records:
        registered: dict[str, list[str]] = {}
        if registry is not None:
            for kind, entries in registry.entries.items():
                names = [n for n, r in entries.items() if r.plugin == record.name]
                if names:
                    registered[kind] = names
        rows.append(
            {
                "name": record.name,
                "distribution": record.distribution,
                "version": record.version,
                "hooks": list(record.hooks),
                "registers": registered,
                "error": record.error,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            what = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["registers"].items()) or "-"
            status = f"FAILED TO LOAD: {row['error']}" if row["error"] else what
            print(f"{row['name']:<16} {row['distribution']} {row['version']:<10} {status}")
    if registry_error:
        print(f"theta: error: {registry_error}", file=sys.stderr)
        return 1
    return 0


def cmd_filter_process(args: argparse.Namespace) -> int:
    from theta.git.filter_process import main

    return main()


def cmd_pre_push(args: argparse.Namespace) -> int:
    from theta.git.prepush import pre_push

    return pre_push(args.remote, sys.stdin.read().splitlines())


def cmd_diff_textconv(args: argparse.Namespace) -> int:
    from theta.git.drivers import textconv

    sys.stdout.write(textconv(args.file))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from theta.git.drivers import merge

    return merge(args.base, args.ours, args.theirs, args.path)


def cmd_fetch(args: argparse.Namespace) -> int:
    from theta.tracking import fetch

    return fetch(Repo(), args.rev, args.paths)


def cmd_checkout(args: argparse.Namespace) -> int:
    from theta.tracking import checkout

    for path in checkout(Repo(), args.paths):
        print(f"theta: checked out {path}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    settings = []
    if args.update_type:
        settings += ["-c", f"theta.updateType={args.update_type}"]
    if args.update_data:
        data = Path(args.update_data).resolve()
        if not data.is_file():
            raise ThetaError(f"update data file {args.update_data} does not exist")
        settings += ["-c", f"theta.updateData={data}"]
    proc = subprocess.run(["git", *settings, "add", "--", *args.paths])
    return proc.returncode


def cmd_squash(args: argparse.Namespace) -> int:
    from theta.updates_cli import request_squash

    request_squash(Repo(), args.paths)
    print(f"theta: the next commit stores {', '.join(args.paths)} as dense versions; `git add` them now")
    return 0


def cmd_post_commit(args: argparse.Namespace) -> int:
    from theta.updates_cli import clear_squash_requests

    clear_squash_requests(Repo())
    return 0


def _inside_repo() -> bool:
    try:
        return run_git("rev-parse", "--is-inside-work-tree", check=False).strip() == "true"
    except ThetaError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="git theta", description="Version control for ML models, inside Git.")
    parser.add_argument("--version", action="version", version=f"theta {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help: str, plumbing: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=f"plumbing: {help}" if plumbing else help, description=help)
        p.set_defaults(handler=handler)
        return p

    p = add("install", cmd_install, "configure git for Theta (global by default) and install the repository's hooks")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--local", action="store_true", help="configure this repository only")
    scope.add_argument("--system", action="store_true", help="configure every user of this machine")
    p = add("uninstall", cmd_uninstall, "remove Theta's git configuration")
    p.add_argument("--local", action="store_true")
    p = add("track", cmd_track, "track files matching PATTERN with Theta (writes .gitattributes)")
    p.add_argument("pattern")
    p.add_argument("--format", help="the checkpoint format, instead of detecting it from each file")
    p = add("ls-files", cmd_ls_files, "list the files Theta tracks")
    p.add_argument("--long", "-l", action="store_true", help="with the bytes of new objects each commit added")
    p = add("add", cmd_add, "git add, choosing how changed parameters are stored")
    p.add_argument("paths", nargs="+")
    p.add_argument("--update-type", help="store changed parameters with this update type (e.g. sparse, low-rank, ia3)")
    p.add_argument(
        "--update-data", help="a checkpoint of update data: '<parameter>.<array>' keys (LoRA factors, IA3 scales)"
    )
    p = add("squash", cmd_squash, "make the next commit store these files as dense versions (history is not rewritten)")
    p.add_argument("paths", nargs="+")
    add("post-commit", cmd_post_commit, "clears squash requests (called by the post-commit hook)", plumbing=True)
    p = add("plugins", cmd_plugins, "list installed plugins and what they register")
    p.add_argument("--json", action="store_true")
    p = add("fetch", cmd_fetch, "download the objects that tracked files need at a revision")
    p.add_argument("rev", nargs="?", default="HEAD")
    p.add_argument("paths", nargs="*")
    p = add("checkout", cmd_checkout, "write tracked files that were left as metadata (after installing a plugin)")
    p.add_argument("paths", nargs="*")
    add("filter-process", cmd_filter_process, "git's long-running filter (called by git)", plumbing=True)
    p = add("pre-push", cmd_pre_push, "push the objects of pushed commits (called by the pre-push hook)", plumbing=True)
    p.add_argument("remote")
    p.add_argument("url", nargs="?")
    p = add("diff-textconv", cmd_diff_textconv, "a checkpoint as text for `git diff` (called by git)", plumbing=True)
    p.add_argument("file")
    p = add("merge", cmd_merge, "merge driver (called by git)", plumbing=True)
    p.add_argument("base")
    p.add_argument("ours")
    p.add_argument("theirs")
    p.add_argument("path")
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
