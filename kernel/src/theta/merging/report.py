"""What a merge says on stderr: what the policy merged, and each conflict with how to go on."""

from __future__ import annotations

import shlex
from collections import Counter

from theta.merging.engine import Outcome
from theta.merging.policy import Policy

SHOWN_CONFLICTS = 20


def summary(path: str, outcome: Outcome) -> list[str]:
    """One line naming how many parameters each strategy merged (nothing when the policy merged none)."""
    if not outcome.merged:
        return []
    counts = Counter(outcome.merged.values())
    parts = ", ".join(f"{n} with {strategy}" for strategy, n in sorted(counts.items()))
    return [f"{path}: {len(outcome.merged)} parameter(s) changed on both sides merged by the policy: {parts}"]


def conflict_report(path: str, outcome: Outcome, policy: Policy, command: str = "merge") -> list[str]:
    """The conflicts of `outcome`, one per line, then what the work tree holds and how to go on."""
    lines = []
    if outcome.conflicts:
        lines.append(
            f"{path}: {len(outcome.conflicts)} parameter(s) changed differently on both sides are in conflict:"
        )
        for conflict in outcome.conflicts[:SHOWN_CONFLICTS]:
            choice = conflict.choice
            lines.append(f"  {conflict.name!r}: {choice.source} ({choice.strategy}): {conflict.reason}")
        if len(outcome.conflicts) > SHOWN_CONFLICTS:
            lines.append(f"  ... and {len(outcome.conflicts) - SHOWN_CONFLICTS} more")
    if outcome.skeleton_conflict:
        lines.append(
            f"{path}: its non-tensor state (the skeleton: e.g. a torch `epoch`, safetensors `__metadata__`)"
            " changed differently on both sides"
        )
    quoted = shlex.quote(path)
    lines.append(
        f"{path} holds every merged parameter, and our version of each conflicting one"
        + (" and our skeleton" if outcome.skeleton_conflict else "")
        + ". To go on, either:"
    )
    skeleton = " --skeleton ours|theirs" if outcome.skeleton_conflict else ""
    if outcome.conflicts:
        lines.append(f"  git theta resolve {quoted} --strategy NAME{skeleton}   (e.g. average; --params GLOB for some)")
    else:
        lines.append(f"  git theta resolve {quoted} --skeleton ours|theirs   (the parameters are merged)")
    lines.append(f"  or add a rule to {_policy_file(policy)} and run `git theta resolve {quoted}`")
    lines.append(f"  or keep one side whole: git checkout --ours|--theirs -- {quoted} && git add {quoted}")
    if command == "merge":
        lines.append(f"  then `git commit`. `git theta merge-policy check {quoted}` shows what the policy does.")
    return lines


def _policy_file(policy: Policy) -> str:
    return policy.origin if policy.origin.endswith(".toml") else ".theta/merge-policy.toml"
