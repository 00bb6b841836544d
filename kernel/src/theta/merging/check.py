"""`git theta merge-policy check`: validate the merge policy, and show what it gives each
parameter of the checkpoints named (a dry run: nothing is merged)."""

from __future__ import annotations

import json
import sys
from typing import Any

from theta.checkpoints import choose_format
from theta.errors import ThetaError
from theta.formats import open_file_source
from theta.merging.policy import Choice, Policy, load_policy
from theta.merging.resolve import repo_path
from theta.metadata import loads, looks_like_metadata
from theta.session import Session


def parameter_names(session: Session, path: str) -> list[str]:
    """The parameters of `path`: from its stored metadata (index, our side of a conflict, HEAD), else the file."""
    for spec in (f":{path}", f":2:{path}", f"HEAD:{path}"):
        data = session.repo.read_blob(spec)
        if data is not None and looks_like_metadata(data[:256]):
            return list(loads(data, f"{path} ({spec.rsplit(':', 1)[0] or 'index'})").parameters)
    file = session.repo.top_level / path
    if not file.is_file():
        raise ThetaError(f"{path}: neither tracked with Theta nor a file in the work tree")
    with open_file_source(file, path) as source:
        fmt = choose_format(session.registry, path, source.head, session.format_override(path))
        return [name for name, _ in fmt.read(source).parameters]


def describe(choice: Choice) -> dict[str, Any]:
    return {"rule": choice.source, "strategy": choice.strategy, "options": choice.recorded_options()}


def check(session: Session, paths: list[str], as_json_output: bool) -> int:
    """Print the policy (and each parameter's choice); 1 when the policy is invalid."""
    try:
        policy = load_policy(session.repo, session.registry)
    except ThetaError as exc:
        if as_json_output:
            print(json.dumps({"valid": False, "error": str(exc)}, indent=2))
        else:
            print(f"theta: error: {exc}", file=sys.stderr)
        return 1
    files = {}
    for given in paths:
        path = repo_path(session, given)
        files[path] = [(name, policy.choose(path, name)) for name in parameter_names(session, path)]
    if as_json_output:
        print(json.dumps(as_json(policy, files), indent=2))
    else:
        print("\n".join(as_text(policy, files)))
    return 0


def as_json(policy: Policy, files: dict[str, list[tuple[str, Choice]]]) -> dict[str, Any]:
    return {
        "valid": True,
        "policy": policy.origin,
        "rules": [
            {"params": list(r.params), "paths": None if r.paths is None else list(r.paths), **describe(r.choice)}
            for r in policy.rules
        ],
        "default": describe(policy.default),
        "files": {
            path: [{"parameter": name, **describe(choice)} for name, choice in entries]
            for path, entries in files.items()
        },
    }


def as_text(policy: Policy, files: dict[str, list[tuple[str, Choice]]]) -> list[str]:
    lines = [f"{policy.origin}: valid; {len(policy.rules)} rule(s), default {policy.default.describe()}"]
    for index, rule in enumerate(policy.rules):
        where = "" if rule.paths is None else f" in {', '.join(rule.paths)}"
        lines.append(f"  rules[{index}]: {', '.join(rule.params)}{where} -> {rule.choice.describe()}")
    for path, entries in files.items():
        lines.append(f"{path}: what a parameter both branches changed would get:")
        width = max((len(name) for name, _ in entries), default=0)
        for name, choice in entries:
            lines.append(f"  {name.ljust(width)}  {choice.source}: {choice.describe()}")
    return lines
