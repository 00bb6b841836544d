"""git's merge driver (`merge.theta.driver`) and diff text conversion (`diff.theta.textconv`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from theta.errors import ThetaError
from theta.metadata import HASH_PREFIX, Metadata, Parameter, dumps, loads, looks_like_metadata
from theta.session import CHECKPOINT_TYPE_ENV

MERGED, CONFLICT, FAILED = 0, 1, 2


def _read(path: Path, label: str) -> Metadata | None:
    data = path.read_bytes()
    if not data:
        return None
    if not looks_like_metadata(data[:256]):
        raise ThetaError(f"{label} is not a Theta metadata file; resolve this conflict by hand")
    return loads(data, label)


def _same(a: Parameter | None, b: Parameter | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.hash, a.dtype, a.shape) == (b.hash, b.dtype, b.shape)


def three_way(base: Metadata | None, ours: Metadata, theirs: Metadata) -> tuple[Metadata, list[str]]:
    """Merge per parameter: a side that changed a parameter wins; both changing it differently conflicts."""
    old = base.parameters if base is not None else {}
    names = list(ours.parameters) + [n for n in theirs.parameters if n not in ours.parameters]
    merged: dict[str, Parameter] = {}
    conflicts = []
    for name in names:
        b, o, t = old.get(name), ours.parameters.get(name), theirs.parameters.get(name)
        if _same(o, t) or _same(b, t):
            chosen = o
        elif _same(b, o):
            chosen = t
        else:
            conflicts.append(name)
            chosen = o
        if chosen is not None:
            merged[name] = chosen
    skeleton = ours.skeleton
    if base is not None and ours.skeleton == base.skeleton:
        skeleton = theirs.skeleton
    result = Metadata(
        theta=ours.theta, format=ours.format, format_plugin=ours.format_plugin, skeleton=skeleton, parameters=merged
    )
    return result, conflicts


def merge(base_file: str, ours_file: str, theirs_file: str, pathname: str) -> int:
    try:
        base = _read(Path(base_file), f"{pathname} (merge base)")
        ours = _read(Path(ours_file), f"{pathname} (ours)")
        theirs = _read(Path(theirs_file), f"{pathname} (theirs)")
        if ours is None or theirs is None:
            print(f"theta: merge: {pathname} was deleted on one side; resolve by hand", file=sys.stderr)
            return CONFLICT
        if ours.format != theirs.format:
            print(
                f"theta: merge: {pathname} is {ours.format} on our side and {theirs.format} on theirs; resolve by hand",
                file=sys.stderr,
            )
            return CONFLICT
        result, conflicts = three_way(base, ours, theirs)
    except ThetaError as exc:
        print(f"theta: merge: {exc}", file=sys.stderr)
        return FAILED
    if conflicts:
        shown = ", ".join(repr(n) for n in conflicts[:10]) + (" ..." if len(conflicts) > 10 else "")
        print(
            f"theta: merge: {pathname}: {len(conflicts)} parameter(s) changed differently on both sides: {shown}."
            " Our version is left in place; pick a side with `git checkout --ours/--theirs -- PATH`.",
            file=sys.stderr,
        )
        return CONFLICT
    Path(ours_file).write_bytes(dumps(result))
    return MERGED


def textconv(path: str) -> str:
    """A line per parameter (name, dtype, shape, hash): the text `git diff` compares.

    git hands over the stored metadata for committed versions, and the checkpoint itself for
    the working tree; a checkpoint is read (not stored) to describe it the same way.
    """
    with open(path, "rb") as f:
        start = f.read(256)
    if looks_like_metadata(start):
        metadata = loads(Path(path).read_bytes(), path)
        entries = [(n, p.dtype, p.shape, p.hash) for n, p in metadata.parameters.items()]
        fmt = metadata.format
    else:
        fmt, entries = _describe_checkpoint(path)
    lines = [f"format {fmt}"]
    for name, dtype, shape, digest in entries:
        dims = "x".join(str(d) for d in shape) or "scalar"
        lines.append(f"{name} {dtype} [{dims}] {digest.removeprefix(HASH_PREFIX)[:16]}")
    return "\n".join(lines) + "\n"


def _attribute(path: str) -> str | None:
    from theta.git.repo import Repo

    repo = Repo()
    try:
        return repo.attribute(path, "theta-format")
    except (OSError, ThetaError):
        return None
    finally:
        repo.close()


def _describe_checkpoint(path: str) -> tuple[str, list[tuple[str, str, tuple[int, ...], str]]]:
    from theta.checkpoints import choose_format
    from theta.formats import SNIFF_BYTES, Source
    from theta.plugins import default_manager

    registry = default_manager().registry
    with open(path, "rb", buffering=1 << 20) as stream:
        head = stream.read(SNIFF_BYTES)
        override = os.environ.get(CHECKPOINT_TYPE_ENV) or _attribute(path)
        fmt = choose_format(registry, path, head, override)
        source = Source(path, stream, head)
        try:
            checkpoint = fmt.read(source)
            return fmt.name, [(n, t.dtype, t.shape, t.sha256()) for n, t in checkpoint.parameters]
        finally:
            source.close()
