"""git's diff driver for tracked checkpoints: `diff.theta.command` and `diff.theta.textconv`.

`git diff` runs the command with both sides (`path old-file old-hex old-mode new-file new-hex
new-mode`, plus `new-path` and a message after a rename). A stored side is read by its blob
id with `git cat-file`, as metadata, whatever git wrote into its temporary file; the working
tree's side is the file itself, read through its format plugin without storing anything.
The output is the `text` renderer's (or `git config theta.diffFormat`'s).

`git log -p` and `git show` run no external driver unless given `--ext-diff`; they use the
textconv, which sees one side at a time and lists its parameters (a line each: name,
layout, update type, stored bytes, hash) for git to compare as text.

Both exit 0 even when a file cannot be shown (a non-zero exit would stop git's whole diff):
the reason is printed in place of that file's diff.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from theta.diffing.engine import diff_file
from theta.diffing.sides import CheckpointSide, MetadataSide, Side, side_of_file
from theta.diffs import RenderOutput, quote_name
from theta.errors import ThetaError
from theta.git.repo import Repo
from theta.metadata import HASH_PREFIX, loads_if_metadata
from theta.session import Session
from theta.sizes import human

NULL_OID = "0" * 40
ABSENT = "."
DEFAULT_FORMAT = "text"  # the renderer git's diff driver uses unless `git config theta.diffFormat` names another


def renderer_name(repo: Repo) -> str:
    return repo.config("theta.diffFormat") or DEFAULT_FORMAT


def wants_color(repo: Repo) -> bool:
    """What git decided for its own diff colours (`color.diff`, `color.ui`), pager included."""
    to_terminal = sys.stdout.isatty() or os.environ.get("GIT_PAGER_IN_USE", "") in ("true", "1")
    answer = repo.git("config", "--get-colorbool", "color.diff", "true" if to_terminal else "false", check=False)
    return answer.strip() == "true"


def _stored_side(session: Session, oid: str, temp_file: str, path: str) -> Side:
    """A committed or staged side: its metadata by blob id; a blob that is not metadata (a file
    committed before it was tracked) is read from git's temporary copy as a checkpoint."""
    blob = session.repo.read_blob(oid)
    metadata = loads_if_metadata(blob, f"{path} (blob {oid[:12]})")
    if metadata is not None:
        return MetadataSide(session, metadata, path, oid[:12])
    return CheckpointSide(session, Path(temp_file), path, oid[:12], in_repo=False, known=[])


def _side(session: Session, path: str, file: str, oid: str, mode: str) -> Side | None:
    if oid == ABSENT or mode == ABSENT:
        return None
    if oid != NULL_OID:
        return _stored_side(session, oid, file, path)
    return side_of_file(session, Path(file), path, None, in_repo=True, known=session.previous_versions(path))


def run(argv: list[str]) -> int:
    """git's external diff: `path old-file old-hex old-mode new-file new-hex new-mode [new-path message]`."""
    if len(argv) not in (7, 9):
        print(f"theta: diff-driver: expected 7 or 9 arguments from git, got {len(argv)}", file=sys.stderr)
        return 2
    path, old_file, old_hex, old_mode, new_file, new_hex, new_mode = argv[:7]
    new_path = argv[7] if len(argv) == 9 else path
    session = Session()
    try:
        renderer = session.registry.diff_renderer(renderer_name(session.repo))
        output = RenderOutput(stream=sys.stdout, color=wants_color(session.repo))
        try:
            old = _side(session, path, old_file, old_hex, old_mode)
            new = _side(session, new_path, new_file, new_hex, new_mode)
            diff = diff_file(new_path, old, new, old_path=path)
        except ThetaError as exc:
            header = f"diff --theta {quote_name('a/' + path)} {quote_name('b/' + new_path)}"
            sys.stdout.write(f"{header}\n  theta: cannot compare: {exc}\n")
            return 0
        renderer.render([diff], output)
    except ThetaError as exc:
        print(f"theta: error: {exc}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        session.close()
    return 0


# ---- textconv: one side, listed ----------------------------------------------------------------


def _line(name: str, dtype: str, shape: tuple[int, ...], update: str | None, stored: int | None, digest: str) -> str:
    layout = f"{dtype} [{', '.join(str(d) for d in shape)}]"
    storage = f"{update} {human(stored)}" if update is not None and stored is not None else "(not stored)"
    return f"{quote_name(name)}  {layout}  {storage}  {digest.removeprefix(HASH_PREFIX)[:12]}"


def textconv(file: str) -> str:
    """A checkpoint version as text: a header, then a line per parameter, in checkpoint order.

    A line depends on its parameter only, so an unchanged parameter gives the same line on
    both sides. `file` is git's temporary copy of a stored version (metadata: git's diff
    commands leave it unconverted) or a working-tree checkpoint, read without storing it.
    """
    session = Session()
    try:
        return _textconv(session, Path(file))
    except ThetaError as exc:
        return f"theta: cannot describe this version: {exc}\n"
    finally:
        session.close()


def _textconv(session: Session, file: Path) -> str:
    path, in_repo = _repo_path(session.repo, file)
    side = side_of_file(
        session, file, path, None, in_repo=in_repo, known=session.previous_versions(path) if in_repo else []
    )
    if side is None:
        raise ThetaError(f"{file} does not exist")
    if isinstance(side, MetadataSide):
        metadata = side.metadata
        total = sum(use.size for use in metadata.objects().values())
        lines = [f"theta {metadata.format}: {len(metadata.parameters)} parameter(s), {human(total)} of objects"]
        for name, entry in side.entries().items():
            lines.append(_line(name, entry.dtype, entry.shape, entry.update, entry.stored_bytes, entry.hash))
        return "\n".join(lines) + "\n"
    body = [_line(n, e.dtype, e.shape, e.update, e.stored_bytes, e.hash) for n, e, _ in side.stream()]  # type: ignore[union-attr]
    fmt = getattr(side, "format_name", None) or "checkpoint"
    return "\n".join([f"theta {fmt}: {len(body)} parameter(s), not stored", *body]) + "\n"


def _repo_path(repo: Repo, file: Path) -> tuple[str, bool]:
    """The file's path in the repository, when it is inside the work tree (git's temporary copies are not)."""
    try:
        top = Path(repo.top_level).resolve()
        return file.resolve().relative_to(top).as_posix(), True
    except (ValueError, ThetaError):
        return file.name, False
