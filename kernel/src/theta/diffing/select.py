"""Parameter globs, the objects the chains of selected parameters need, and fetching them.

Globs are anchored (`fnmatch` on the whole name; `*` also matches dots), so `layers.1.*`
never picks `layers.10.weight` by accident of a substring.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from theta.errors import ObjectMissing, ThetaError
from theta.git.lfs import fetch_objects
from theta.metadata import Metadata
from theta.store.objects import ObjectStore

Selector = Callable[[str], bool]


def selector(globs: Sequence[str] | None) -> Selector:
    """A predicate on parameter names: every name when `globs` is empty or None."""
    if not globs:
        return lambda name: True
    pattern = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs), re.DOTALL)
    return lambda name: pattern.match(name) is not None


def selected_names(metadata: Metadata, globs: Sequence[str] | None, path: str) -> list[str]:
    """The parameters `globs` pick, in checkpoint order; an error when a glob picks none."""
    if not globs:
        return list(metadata.parameters)
    names = list(metadata.parameters)
    unmatched = [g for g in globs if not any(selector([g])(n) for n in names)]
    if unmatched:
        sample = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise ThetaError(
            f"{path}: no parameter matches {', '.join(repr(g) for g in unmatched)} (globs match whole names;"
            f" the file has {len(names)} parameter(s): {sample})"
        )
    pick = selector(globs)
    return [n for n in names if pick(n)]


def chain_objects(metadata: Metadata, names: Iterable[str] | None) -> dict[str, tuple[int, str | None]]:
    """oid -> (size, parameter) for the chains of `names` (every parameter and the skeleton when None)."""
    if names is None:
        return {oid: (use.size, use.parameter) for oid, use in metadata.objects().items()}
    found: dict[str, tuple[int, str | None]] = {}
    for name in names:
        for step in metadata.parameters[name].steps:
            for record in step.objects.values():
                found.setdefault(record.oid, (record.size, name))
    return found


def ensure_local(
    store: ObjectStore, objects: dict[str, tuple[int, str | None]], path: str, cwd: Path | None
) -> list[str]:
    """Fetch whichever of `objects` the local store lacks, in one batch; returns the oids fetched.

    An object that does not arrive is an `ObjectMissing` naming the file, the parameter and
    the object.
    """
    missing = [(oid, size) for oid, (size, _) in objects.items() if not store.has(oid)]
    if not missing:
        return []
    fetch_objects(missing, path, cwd=cwd)
    absent = [oid for oid, _ in missing if not store.has(oid)]
    if absent:
        owner = objects[absent[0]][1]
        what = "its skeleton" if owner is None else f"parameter {owner!r}"
        raise ObjectMissing(
            absent[0],
            f"{path}: {len(absent)} object(s) did not arrive, e.g. {absent[0]} of {what}: it is neither in the"
            " local store nor on the LFS remote (was it pushed? is the remote reachable?)",
        )
    return [oid for oid, _ in missing]
