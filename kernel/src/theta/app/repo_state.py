"""Questions about where a command runs."""

from __future__ import annotations

from theta.errors import ThetaError
from theta.git.repo import run_git


def inside_repo() -> bool:
    try:
        return run_git("rev-parse", "--is-inside-work-tree", check=False).strip() == "true"
    except ThetaError:
        return False
