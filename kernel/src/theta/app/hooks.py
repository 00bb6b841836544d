"""The repository hooks Theta needs (pre-push), installed beside whatever is already there.

An existing hook that is not ours is kept: it is renamed `<hook>.theta-chained` and our hook
runs it after our own step, with the same arguments and standard input.
"""

from __future__ import annotations

import shutil
import stat
import sys
from pathlib import Path

from theta.git.repo import Repo

MARKER = "# theta: managed hook"
CHAINED_SUFFIX = ".theta-chained"
HOOKS = ("pre-push", "post-commit")
HOOKS_WITH_INPUT = ("pre-push",)


def theta_command() -> str:
    """How git should call us: `git-theta` when it is on PATH, else this environment's script."""
    found = shutil.which("git-theta")
    if found:
        return "git-theta"
    candidate = Path(sys.executable).parent / "git-theta"
    return str(candidate) if candidate.exists() else "git-theta"


def hook_script(name: str) -> str:
    command = theta_command()
    missing = f"""command -v {command} >/dev/null 2>&1 || {{
  echo >&2 "theta: {command} was not found on PATH; install theta-kernel, or delete .git/hooks/{name}"
  exit 2
}}
"""
    if name in HOOKS_WITH_INPUT:
        body = f"""input=$(cat)
printf '%s\\n' "$input" | {command} {name} "$@" || exit $?
if [ -x "$0{CHAINED_SUFFIX}" ]; then
  printf '%s\\n' "$input" | "$0{CHAINED_SUFFIX}" "$@" || exit $?
fi
"""
    else:
        body = f"""{command} {name} "$@" || exit $?
if [ -x "$0{CHAINED_SUFFIX}" ]; then
  "$0{CHAINED_SUFFIX}" "$@" || exit $?
fi
"""
    return f"#!/bin/sh\n{MARKER}\n{missing}{body}"


def install_hook(hooks_dir: Path, name: str) -> bool:
    """Install one hook; returns True when something was written."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    path = hooks_dir / name
    script = hook_script(name)
    if path.exists():
        current = path.read_text(errors="replace")
        if current == script:
            return False
        if MARKER not in current:
            chained = path.with_name(name + CHAINED_SUFFIX)
            if not chained.exists():
                path.rename(chained)
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return True


def ensure_repo_hooks(repo: Repo) -> None:
    """Install missing hooks; leaves a hook of ours that is already there untouched."""
    for name in HOOKS:
        path = repo.hooks_dir / name
        if not path.exists() or MARKER not in path.read_text(errors="replace"):
            install_hook(repo.hooks_dir, name)
