"""Compare two versions of one file, parameter by parameter.

Unchanged parameters are known equal from their hashes and cost nothing; for a changed
tensor of the same shape the two versions are loaded (one at a time) and compared.
"""

from __future__ import annotations

import contextlib
import sys

from attrs import evolve

from theta.diffing.figures import compare
from theta.diffing.select import Selector, selector
from theta.diffing.sides import Entry, MetadataSide, Side
from theta.diffs import ADDED, CHANGED, REMOVED, UNCHANGED, DiffSummary, FileDiff, ParameterDiff
from theta.errors import ObjectMissing
from theta.tensors import Tensor


def diff_file(
    path: str,
    old: Side | None,
    new: Side | None,
    *,
    select: Selector | None = None,
    old_label: str | None = None,
    new_label: str | None = None,
    old_path: str | None = None,
) -> FileDiff:
    """The diff of `path` from `old` to `new` (None: the file does not exist on that side)."""
    pick = select or selector(None)
    old_entries = {n: e for n, e in (old.entries() if old is not None else {}).items() if pick(n)}
    rows: list[ParameterDiff] = []
    new_order: list[str] = []
    stream = new.stream() if new is not None else None
    if stream is not None:
        for name, entry, tensor in stream:
            if pick(name):
                new_order.append(name)
                rows.append(_row(name, old_entries.get(name), entry, old, lambda t=tensor: t))
    elif new is not None:
        new_entries = {n: e for n, e in new.entries().items() if pick(n)}
        changed = [n for n, e in new_entries.items() if n in old_entries and _comparable(old_entries[n], e)]
        for side in (old, new):
            if isinstance(side, MetadataSide) and changed:
                with contextlib.suppress(ObjectMissing):  # each parameter then says what it lacks
                    side.prepare(changed)
        for name, entry in new_entries.items():
            new_order.append(name)
            rows.append(_row(name, old_entries.get(name), entry, old, lambda n=name: new.load(n)))  # type: ignore[union-attr]
    seen = set(new_order)
    removed = {
        name: ParameterDiff(name=name, status=REMOVED, dtype=entry.dtype, shape=entry.shape)
        for name, entry in old_entries.items()
        if name not in seen
    }
    ordered = _place_removed(rows, list(old_entries), removed)
    return FileDiff(
        path=path,
        old=old_label if old_label is not None else (old.label if old is not None else None),
        new=new_label if new_label is not None else (new.label if new is not None else None),
        parameters=ordered,
        summary=DiffSummary.of(ordered, _stored_bytes(old, new, list(seen) if select is not None else None)),
        old_path=old_path if old_path not in (None, path) else None,
    )


def _comparable(old: Entry, new: Entry) -> bool:
    return not old.same(new) and old.shape == new.shape


def _row(name: str, old: Entry | None, new: Entry, old_side: Side | None, load_new) -> ParameterDiff:  # type: ignore[no-untyped-def]
    base = ParameterDiff(
        name=name,
        status=ADDED,
        dtype=new.dtype,
        shape=new.shape,
        update=new.update,
        stored_bytes=new.stored_bytes,
    )
    if old is None:
        return base
    if old.same(new):
        return evolve(base, status=UNCHANGED, stored_bytes=0 if new.param is not None else None)
    row = evolve(base, status=CHANGED)
    if (old.dtype, old.shape) != (new.dtype, new.shape):
        row = evolve(row, old_dtype=old.dtype, old_shape=old.shape)
    if old.shape == new.shape and old_side is not None:
        try:
            old_tensor: Tensor = old_side.load(name)
            figures = compare(old_tensor, load_new())
        except ObjectMissing as exc:  # the layouts are still worth showing
            print(f"theta: warning: {exc}; its figures are left out", file=sys.stderr)
            return row
        del old_tensor
        row = evolve(
            row,
            l2=figures.l2,
            relative=figures.relative,
            max_abs=figures.max_abs,
            changed_fraction=figures.changed_fraction,
            cosine=figures.cosine,
        )
    return row


def _place_removed(
    rows: list[ParameterDiff], old_order: list[str], removed: dict[str, ParameterDiff]
) -> list[ParameterDiff]:
    """The new side's order, each removed parameter after the one that preceded it in the old order."""
    if not removed:
        return rows
    after: dict[str | None, list[ParameterDiff]] = {}
    present = {row.name for row in rows}
    anchor: str | None = None
    for name in old_order:
        if name in removed:
            after.setdefault(anchor, []).append(removed[name])
        elif name in present:
            anchor = name
    out = list(after.get(None, []))
    for row in rows:
        out.append(row)
        out.extend(after.get(row.name, []))
    return out


def _stored_bytes(old: Side | None, new: Side | None, names: list[str] | None) -> int | None:
    """Bytes of the objects the new version (or its selected parameters) needs and the old one lacks."""
    if new is None:
        return 0
    if not new.stored or not isinstance(new, MetadataSide):
        return None
    if names is None:
        needed = new.objects()
    else:
        needed = {}
        for name in names:
            for step in new.metadata.parameters[name].steps:
                for record in step.objects.values():
                    needed[record.oid] = record.size
    had = (old.objects() or {}) if old is not None else {}
    return sum(size for oid, size in needed.items() if oid not in had)
