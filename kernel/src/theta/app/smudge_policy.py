"""When the smudge filter leaves a tracked file as its metadata instead of writing the checkpoint.

- Lazy clones and checkouts: `GIT_LFS_SKIP_SMUDGE` is true (read as git-lfs reads it), or the
  filter runs with `--skip-smudge` (`git theta install --skip-smudge`). Nothing is fetched;
  `git theta fetch` and `git theta checkout` write the files later.
- Diffs: git converts a stored version to its working-tree form before it hands it to a diff
  driver or a textconv, which for a checkpoint means rebuilding the whole file. Theta's
  drivers read the metadata anyway, so when the git command that started the filter is one
  that only shows changes (`git diff`, `git log`, `git show`, ...), the stored metadata is
  handed back as it is. The command is read from the parent processes' command lines
  (`/proc`); where that is not possible, the checkpoint is rebuilt as before.
"""

from __future__ import annotations

import os
from pathlib import Path

from theta.git.repo import run_git

SKIP_ENV = "GIT_LFS_SKIP_SMUDGE"
TRUE = ("1", "true", "yes", "on", "t", "y")
# git commands that convert stored blobs only to show them, never to write the working tree.
DIFF_ONLY = frozenset(
    {
        "diff",
        "diff-files",
        "diff-index",
        "diff-tree",
        "log",
        "show",
        "whatchanged",
        "range-diff",
        "blame",
        "annotate",
        "grep",
    }
)
# git commands whose subcommand only shows changes (`git stash show -p`).
DIFF_ONLY_SUBCOMMANDS = {"stash": frozenset({"show"})}
# git's global options that take their value as the next argument.
OPTIONS_WITH_VALUE = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--super-prefix", "--config-env"}
)
MAX_ANCESTORS = 4
MAX_ALIASES = 8  # an alias naming an alias, ...; git itself refuses loops


def reason(skip_smudge: bool = False) -> str | None:
    """Why this filter process leaves metadata files in place, or None when it writes checkpoints."""
    if skip_smudge:
        return "--skip-smudge"
    if os.environ.get(SKIP_ENV, "").strip().lower() in TRUE:
        return f"{SKIP_ENV}={os.environ[SKIP_ENV]}"
    command = parent_git_command()
    if command is not None and (command in DIFF_ONLY or " " in command):
        return f"git {command} only shows changes"
    return None


def parent_git_command(pid: int | None = None) -> str | None:
    """The subcommand of the nearest git process among this process's ancestors (aliases resolved)."""
    current = os.getppid() if pid is None else pid
    for _ in range(MAX_ANCESTORS):
        argv = _cmdline(current)
        if argv is None:
            return None
        if argv and Path(argv[0]).name in ("git", "git.exe"):
            return _subcommand(argv[1:])
        parent = _parent(current)
        if parent is None or parent <= 1:
            return None
        current = parent
    return None


def _subcommand(args: list[str], depth: int = 0) -> str | None:
    """The git command `args` (git's own arguments, without `git`) run, as `diff` or `stash show`."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in OPTIONS_WITH_VALUE:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        expansion = _alias(arg) if depth < MAX_ALIASES else None
        if expansion is not None:
            return _subcommand(expansion + args[i + 1 :], depth + 1)
        rest = [a for a in args[i + 1 :] if not a.startswith("-")]
        if rest and rest[0] in DIFF_ONLY_SUBCOMMANDS.get(arg, ()):
            return f"{arg} {rest[0]}"
        return arg
    return None


def _alias(name: str) -> list[str] | None:
    """What the alias `name` expands to; None when it is no alias (or runs a shell command)."""
    try:
        expansion = run_git("config", "--get", f"alias.{name}", check=False).split()
    except OSError:
        return None
    if not expansion or expansion[0].startswith("!") or expansion[0] == name:
        return None
    return expansion


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="surrogateescape") for part in raw.split(b"\0") if part]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 else None
