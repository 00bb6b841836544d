"""The three-way merge of one checkpoint, parameter by parameter, against the merge base.

A parameter changed on one side only takes that side (added and removed ones likewise); one
changed identically on both sides is taken; only a parameter the two sides changed
differently goes to the merge policy, whose strategy either decides without tensors (a side,
or a conflict) or merges the three versions. Those versions are loaded a parameter at a time
on each of the pool's workers, after the objects they need were fetched in one batch; a merged
tensor is stored like any commit's (dense, or as an update of the version whose bits it keeps
most often, whichever is smaller) and its entry records the strategy and options that made
it. Every other parameter keeps its entry as it is.

The skeleton (the checkpoint's non-tensor state) follows the same three-way rule, judged on
what the format says matters in it (`CheckpointFormat.skeleton_state`); changed on both
sides, it is a conflict. A conflicting parameter keeps our entry, so the result is always a
valid checkpoint.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
from attrs import evolve, frozen

from theta.bits import SAMPLE_ELEMENTS, evenly_spaced, raw_bits
from theta.errors import ObjectMissing
from theta.formats import CheckpointFormat
from theta.merges import SIDES, Conflict, MergeStrategy, Side
from theta.merging.policy import Choice, Policy
from theta.metadata import METADATA_VERSION, Blob, MergeRecord, Metadata, Parameter
from theta.prefetch import IN_FLIGHT_BYTES, OrderedPool
from theta.progress import Progress
from theta.session import Session
from theta.splice import nbytes
from theta.tensors import Tensor

# A tensor a strategy combined differs from both sides almost everywhere: only the cheap update
# types (cost 1, like comparing bits) are tried on it, never a factorisation.
MERGED_UPDATE_COST = 1


@frozen(kw_only=True)
class Versions:
    """The three versions of one checkpoint; `base` is None when the file has no merge base."""

    base: Metadata | None
    ours: Metadata
    theirs: Metadata

    def entry(self, side: Side, name: str) -> Parameter | None:
        metadata = getattr(self, side)
        return None if metadata is None else metadata.parameters.get(name)

    def names(self, first: Side = "ours") -> list[str]:
        """The parameters of side `first` in its order, then those only the others have.

        The result follows the order of the side whose skeleton it takes, which is the order in
        which the format writes (and later reads back) the parameters.
        """
        order: dict[str, None] = {}
        for side in (first, "ours", "theirs"):
            metadata = getattr(self, side)
            if metadata is not None:
                order.update(dict.fromkeys(metadata.parameters))
        return list(order)


@frozen(kw_only=True)
class Override:
    """`git theta resolve`: `choice` for the parameters matching `params` (None: those left in conflict).

    Without a `choice`, the policy merges every parameter; `skeleton` names the side whose
    skeleton the result takes.
    """

    choice: Choice | None = None
    params: tuple[str, ...] | None = None
    skeleton: Side | None = None

    def forced(self, name: str) -> bool:
        return (
            self.choice is not None
            and self.params is not None
            and any(fnmatch.fnmatchcase(name, g) for g in self.params)
        )


@frozen(kw_only=True)
class ParameterConflict:
    name: str
    reason: str
    choice: Choice


@frozen(kw_only=True)
class Outcome:
    """The merged metadata, what the policy merged (name -> strategy) and what was left in conflict."""

    metadata: Metadata
    merged: dict[str, str]
    conflicts: tuple[ParameterConflict, ...]
    skeleton_conflict: bool

    @property
    def clean(self) -> bool:
        return not self.conflicts and not self.skeleton_conflict


def same(a: Parameter | None, b: Parameter | None) -> bool:
    """The same tensor (hash, dtype and shape), or both absent."""
    if a is None or b is None:
        return a is b
    return (a.hash, a.dtype, a.shape) == (b.hash, b.dtype, b.shape)


def one_sided(versions: Versions, name: str) -> Side | None:
    """The side whose entry a parameter takes without the policy; None when both changed it differently."""
    b, o, t = (versions.entry(side, name) for side in SIDES)
    if same(o, t) or same(b, t):
        return "ours"
    if same(b, o):
        return "theirs"
    return None


@frozen(kw_only=True)
class _Plan:
    """A parameter both sides changed: the choice in force and what the strategy decided without tensors."""

    name: str
    choice: Choice
    decision: Side | Conflict | None
    fallback: Choice | None  # the override to try when the policy's strategy leaves a conflict


class MergeEngine:
    def __init__(self, session: Session, policy: Policy, override: Override | None = None) -> None:
        self.session = session
        self.policy = policy
        self.override = override

    @property
    def registry(self) -> Any:
        return self.session.registry

    # -- deciding ---------------------------------------------------------------------------

    def _strategy(self, choice: Choice) -> MergeStrategy | None:
        return self.registry.merge_strategies.get(choice.strategy)

    def _decide(self, choice: Choice, name: str) -> Side | Conflict | None:
        strategy = self._strategy(choice)
        if strategy is None:
            return Conflict(reason=f"merge strategy {choice.strategy!r} is not installed")
        try:
            decided = strategy.choose(name, choice.options)
        except Exception as exc:
            return Conflict(reason=self._fault(choice, "choose", exc))
        if decided is not None and not isinstance(decided, Conflict) and decided not in SIDES:
            return Conflict(reason=f"merge strategy {choice.strategy!r} chose {decided!r}, not a side or a conflict")
        return decided

    def _fault(self, choice: Choice, method: str, exc: BaseException) -> str:
        owner = self.registry.owner("merge_strategies", choice.strategy)
        return f"merge strategy {choice.strategy!r} ({owner}) failed in {method}: {type(exc).__name__}: {exc}"

    def plan(self, path: str, versions: Versions) -> tuple[dict[str, Side], list[_Plan]]:
        """Which parameters take a side without the policy, and the policy's plan for the others."""
        sided: dict[str, Side] = {}
        plans: list[_Plan] = []
        for name in versions.names():
            side = one_sided(versions, name)
            if side is not None:
                sided[name] = side
                continue
            plans.append(self._plan_one(path, name))
        return sided, plans

    def _plan_one(self, path: str, name: str) -> _Plan:
        override = self.override
        if override is not None and override.choice is not None and override.forced(name):
            return _Plan(name=name, choice=override.choice, decision=self._decide(override.choice, name), fallback=None)
        choice = self.policy.choose(path, name)
        decision = self._decide(choice, name)
        fallback = override.choice if override is not None and override.params is None else None
        if isinstance(decision, Conflict) and fallback is not None:
            return _Plan(name=name, choice=fallback, decision=self._decide(fallback, name), fallback=None)
        return _Plan(name=name, choice=choice, decision=decision, fallback=fallback)

    # -- merging ----------------------------------------------------------------------------

    def merge(self, path: str, versions: Versions) -> Outcome:
        sided, plans = self.plan(path, versions)
        by_name = {p.name: p for p in plans}
        skeleton_plan = self._skeleton_plan(versions)
        self._fetch(path, versions, [p for p in plans if p.decision is None], skeleton_plan)
        skeleton_side, skeleton_conflict = self._merge_skeleton(versions, skeleton_plan)
        skeleton = getattr(versions, skeleton_side).skeleton if getattr(versions, skeleton_side) else None
        settings = evolve(self.session.clean_settings(path), max_update_cost=MERGED_UPDATE_COST)
        merged: dict[str, str] = {}
        conflicts: list[ParameterConflict] = []
        parameters: dict[str, Parameter] = {}
        total = sum(_size(versions, p.name) for p in plans if p.decision is None)
        progress = Progress(f"merging {path}", total, "B")
        # The largest merge fits beside smaller ones: a worker never idles while it runs alone.
        limit = IN_FLIGHT_BYTES + 3 * max((_tensor_bytes(versions, p.name) for p in plans), default=0)
        try:
            with OrderedPool[Computed](limit=limit) as pool:
                for name in versions.names(skeleton_side):
                    if name in sided:
                        pool.submit(name, partial(_taken, versions.entry(sided[name], name)), 0)
                        continue
                    plan = by_name[name]
                    if plan.decision is None:
                        progress.advance(_size(versions, name))
                    job = partial(self._compute, path, versions, plan, settings)
                    pool.submit(name, job, 3 * _tensor_bytes(versions, name) if plan.decision is None else 0)
                    for done, computed in pool.done():
                        _settle(done, computed, versions, parameters, merged, conflicts)
                for done, computed in pool.rest():
                    _settle(done, computed, versions, parameters, merged, conflicts)
        finally:
            progress.close()
        metadata = Metadata(
            theta=METADATA_VERSION,
            format=versions.ours.format,
            format_plugin=versions.ours.format_plugin,
            skeleton=skeleton,
            parameters=parameters,
        )
        conflicted = tuple(conflicts)
        return Outcome(metadata=metadata, merged=merged, conflicts=conflicted, skeleton_conflict=skeleton_conflict)

    def _compute(self, path: str, versions: Versions, plan: _Plan, settings: Any) -> Computed:
        """What a parameter both sides changed becomes (on a worker thread: it changes no shared state)."""
        choice, decision = plan.choice, plan.decision
        if decision is None:
            return self._merge_tensors(path, versions, plan, settings)
        if isinstance(decision, Conflict):
            return choice, decision
        taken = versions.entry(decision, plan.name)
        return choice, None if taken is None else evolve(taken, merge=_record(choice))

    def _merge_tensors(
        self, path: str, versions: Versions, plan: _Plan, settings: Any
    ) -> tuple[Choice, Parameter | Conflict | None]:
        name = plan.name
        entries = {side: versions.entry(side, name) for side in SIDES}
        tensors = {
            side: None if entry is None else self.session.params.load(entry, path, name)
            for side, entry in entries.items()
        }
        choice = plan.choice
        result = self._call_merge(choice, name, tensors)
        if isinstance(result, Conflict) and plan.fallback is not None:
            choice = plan.fallback
            decided = self._decide(choice, name)
            if isinstance(decided, Conflict):
                result = decided
            elif decided is not None:
                taken = entries[decided]
                return choice, None if taken is None else evolve(taken, merge=_record(choice))
            else:
                result = self._call_merge(choice, name, tensors)
        if not isinstance(result, Tensor):
            return choice, result
        closest = _closest(result, tensors)
        reference = tensors[closest] if closest is not None else None
        tensors.clear()  # only the version the result may be stored as an update of stays in memory
        known = [entries[side] for side in _ranked(closest) if entries[side] is not None]
        cleaner = self.session.cleaner
        entry = cleaner.encode_parameter(path, name, result, known, settings, reference=reference)
        return choice, evolve(entry, merge=_record(choice))

    def _call_merge(self, choice: Choice, name: str, tensors: dict[str, Tensor | None]) -> Tensor | Conflict | None:
        strategy = self._strategy(choice)
        if strategy is None:
            return Conflict(reason=f"merge strategy {choice.strategy!r} is not installed")
        try:
            result = strategy.merge(name, tensors["base"], tensors["ours"], tensors["theirs"], choice.options)
        except Exception as exc:
            return Conflict(reason=self._fault(choice, "merge", exc))
        if result is not None and not isinstance(result, (Tensor, Conflict)):
            return Conflict(reason=f"merge strategy {choice.strategy!r} returned {type(result).__name__}, not a tensor")
        return result

    # -- objects ----------------------------------------------------------------------------

    def _fetch(self, path: str, versions: Versions, plans: Sequence[_Plan], skeletons: bool) -> None:
        """Fetch, in one batch, every object the tensor merges (and the skeleton comparison) need."""
        needed: dict[str, tuple[int, str]] = {}
        for plan in plans:
            for side in SIDES:
                entry = versions.entry(side, plan.name)
                if entry is None:
                    continue
                for step in entry.steps:
                    for record in step.objects.values():
                        needed.setdefault(record.oid, (record.size, f"parameter {plan.name!r} ({side})"))
        if skeletons:
            for side, blob in _skeletons(versions):
                needed.setdefault(blob.oid, (blob.size, f"the skeleton ({side})"))
        store = self.session.params.store
        missing = [(oid, size) for oid, (size, _) in needed.items() if not store.has(oid)]
        fetch = self.session.smudger.fetch
        if missing and fetch is not None:
            fetch(missing, path)
            missing = [(oid, size) for oid, size in missing if not store.has(oid)]
        if missing:
            oid = missing[0][0]
            raise ObjectMissing(
                oid,
                f"{path}: {len(missing)} object(s) the merge needs are missing, e.g. {oid} of {needed[oid][1]};"
                " they are neither in the local store nor on the remote (were they pushed? is the remote"
                " reachable?). Nothing was merged.",
            )

    # -- skeleton ---------------------------------------------------------------------------

    def _skeleton_plan(self, versions: Versions) -> bool:
        """True when the skeletons must be read to be compared (both sides changed its bytes)."""
        if self.override is not None and self.override.skeleton is not None:
            return False
        base = versions.base.skeleton if versions.base is not None else None
        ours, theirs = versions.ours.skeleton, versions.theirs.skeleton
        return not (ours in (theirs, base) or theirs == base)

    def _merge_skeleton(self, versions: Versions, compare: bool) -> tuple[Side, bool]:
        """The side whose skeleton the result takes, and whether the skeletons conflict."""
        base = versions.base.skeleton if versions.base is not None else None
        ours, theirs = versions.ours.skeleton, versions.theirs.skeleton
        if self.override is not None and self.override.skeleton is not None:
            return self.override.skeleton, False
        if not compare:
            return ("theirs" if ours == base and theirs != base else "ours"), False
        state = self._state_function(versions.ours.format)
        read = self.session.params.store.read
        states = {label: state(read(blob.oid, blob.size)) for label, blob in _skeletons(versions)}
        so, st, sb = states.get("ours"), states.get("theirs"), states.get("base")
        if st == sb or so == st:
            return "ours", False
        if so == sb:
            return "theirs", False
        return "ours", True

    def _state_function(self, format_name: str) -> Callable[[bytes], bytes]:
        fmt: CheckpointFormat | None = self.registry.formats.get(format_name)
        return fmt.skeleton_state if fmt is not None else bytes


def _skeletons(versions: Versions) -> Iterator[tuple[str, Blob]]:
    for side in SIDES:
        metadata = getattr(versions, side)
        if metadata is not None and metadata.skeleton is not None:
            yield side, metadata.skeleton


def _record(choice: Choice) -> MergeRecord:
    return MergeRecord(strategy=choice.strategy, options=choice.recorded_options())


# (the choice in force, or None for a parameter only one side changed; the entry or a conflict)
Computed = tuple[Choice | None, Parameter | Conflict | None]


def _taken(entry: Parameter | None) -> Computed:
    return None, entry


def _settle(
    name: str,
    computed: Computed,
    versions: Versions,
    parameters: dict[str, Parameter],
    merged: dict[str, str],
    conflicts: list[ParameterConflict],
) -> None:
    """Record one parameter's outcome, in checkpoint order; a conflict keeps our entry."""
    choice, result = computed
    if choice is not None and isinstance(result, Conflict):
        conflicts.append(ParameterConflict(name=name, reason=result.reason, choice=choice))
        result = versions.entry("ours", name)
    elif choice is not None:
        merged[name] = choice.strategy
    if isinstance(result, Parameter):
        parameters[name] = result


def _closest(result: Tensor, tensors: dict[Side, Tensor | None]) -> Side | None:
    """The version of the same layout whose bits the merged tensor keeps most often, judged on a sample."""
    if result.numel == 0:
        return None
    picked = evenly_spaced(result.numel, SAMPLE_ELEMENTS)
    merged = raw_bits(result)[picked]
    best: tuple[int, Side] | None = None
    for side in ("ours", "theirs", "base"):
        tensor = tensors.get(side)
        if tensor is None or not tensor.same_layout(result):
            continue
        equal = int(np.count_nonzero(raw_bits(tensor)[picked] == merged))
        if best is None or equal > best[0]:
            best = (equal, side)
    return None if best is None else best[1]


def _ranked(first: Side | None) -> list[Side]:
    order: list[Side] = ["ours", "theirs", "base"]
    return order if first is None else [first, *(s for s in order if s != first)]


def _either(versions: Versions, name: str) -> Parameter | None:
    return versions.entry("ours", name) or versions.entry("theirs", name)


def _tensor_bytes(versions: Versions, name: str) -> int:
    entry = _either(versions, name)
    return 0 if entry is None else nbytes(entry.dtype, entry.shape)


def _size(versions: Versions, name: str) -> int:
    entry = _either(versions, name)
    if entry is None:
        return 0
    return sum(o.size for step in entry.steps for o in step.objects.values())
