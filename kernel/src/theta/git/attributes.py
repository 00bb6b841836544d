"""Attributes of paths as a revision's own `.gitattributes` files give them.

`git check-attr` reads the working tree (or, with `--cached`, the index), which a
`--no-checkout` clone does not have. A temporary index holding the revision's tree (made by
`git read-tree`, which writes no file of the work tree) lets `git check-attr --cached` answer
with git's own matching rules, on every git version.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from theta.errors import ThetaError
from theta.git.repo import Repo


def attributes_at(repo: Repo, rev: str, paths: Sequence[str], name: str) -> dict[str, str | None]:
    """path -> the value of attribute `name` at `rev` (None when unspecified or unset)."""
    if not paths:
        return {}
    fd, index = tempfile.mkstemp(prefix="theta-index-", dir=repo.git_dir)
    os.close(fd)
    os.unlink(index)  # git read-tree makes the file; an empty one is not a valid index
    env = {**os.environ, "GIT_INDEX_FILE": index}
    try:
        _git(repo, env, ["read-tree", rev])
        out = _git(repo, env, ["check-attr", "--cached", "-z", "--stdin", name], input="\0".join(paths) + "\0")
    finally:
        Path(index).unlink(missing_ok=True)
    fields = out.split("\0")
    values: dict[str, str | None] = {}
    for i in range(0, len(fields) - 2, 3):
        path, _, value = fields[i : i + 3]
        values[path] = None if value in ("unspecified", "unset") else value
    return values


def _git(repo: Repo, env: dict[str, str], args: list[str], input: str | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=repo.cwd, env=env, input=input.encode() if input else None, capture_output=True
    )
    if proc.returncode != 0:
        raise ThetaError(f"`git {' '.join(args)}` failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode(errors="surrogateescape")
