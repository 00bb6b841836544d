"""git's diff text conversion (`diff.theta.textconv`); the merge driver is `theta.app.merge_driver`."""

from __future__ import annotations

import os
from pathlib import Path

from theta.errors import ThetaError
from theta.metadata import HASH_PREFIX, loads, looks_like_metadata
from theta.session import CHECKPOINT_TYPE_ENV


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
