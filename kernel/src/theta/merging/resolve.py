"""`git theta resolve PATH`: merge a conflicted checkpoint again from its three stages.

With `--strategy NAME` (and `--option KEY=VALUE`), the parameters the merge left in conflict
(or, with `--params GLOB`, those both sides changed whose names match) are merged with that
strategy; every other parameter is merged as the policy says. `--skeleton ours|theirs|base`
settles a conflict in the non-tensor state. When nothing is left in conflict, the result is
staged and written through the filter; otherwise the work tree shows the partial result,
the path stays conflicted, and the remaining conflicts are named.
"""

from __future__ import annotations

import os
import posixpath
import sys
from collections.abc import Sequence

from theta.errors import SpecError, ThetaError
from theta.merges import Side
from theta.merging.engine import MergeEngine, Override, Versions
from theta.merging.policy import load_policy, parse_option_values, resolve_choice
from theta.merging.report import conflict_report, summary
from theta.metadata import Metadata, dumps, loads, looks_like_metadata
from theta.session import Session

STAGES = {"1": "base", "2": "ours", "3": "theirs"}


def say(message: str) -> None:
    print(f"theta: resolve: {message}", file=sys.stderr)


def repo_path(session: Session, path: str) -> str:
    prefix = session.repo.git("rev-parse", "--show-prefix").strip()
    return posixpath.normpath(posixpath.join(prefix, path.replace(os.sep, "/")))


def conflicted_stages(session: Session, path: str) -> dict[str, tuple[str, str]]:
    """stage name -> (mode, blob id) of `path` in the index; empty when it is not in conflict."""
    found = {}
    for record in session.repo.git("ls-files", "-u", "-z", "--", path).split("\0"):
        if not record:
            continue
        info, _, name = record.partition("\t")
        mode, blob, stage = info.split()
        if name == path:
            found[STAGES[stage]] = (mode, blob)
    return found


def read_stage(session: Session, path: str, stage: str, blob: str | None) -> Metadata | None:
    if blob is None:
        return None
    data = session.repo.read_blob(blob) or b""
    label = f"{path} ({stage} version)"
    if not looks_like_metadata(data[:256]):
        raise ThetaError(f"{label} is not a Theta metadata file; resolve it by hand")
    return loads(data, label)


def resolve(
    session: Session,
    given_path: str,
    strategy: str | None = None,
    option_pairs: Sequence[str] = (),
    params: Sequence[str] = (),
    skeleton: Side | None = None,
) -> int:
    """Merge `given_path` again; 0 when it is resolved and staged, 1 when conflicts remain."""
    if params and not strategy:
        raise ThetaError("--params needs --strategy: it names the parameters that strategy merges")
    if option_pairs and not strategy:
        raise ThetaError("--option needs --strategy: options belong to a strategy")
    path = repo_path(session, given_path)
    stages = conflicted_stages(session, path)
    if "ours" not in stages or "theirs" not in stages:
        raise ThetaError(f"{path} is not in conflict (`git ls-files -u` lists no stages 2 and 3 for it)")
    versions = {stage: read_stage(session, path, stage, stages.get(stage, ("", None))[1]) for stage in STAGES.values()}
    ours, theirs = versions["ours"], versions["theirs"]
    assert ours is not None and theirs is not None
    if ours.format != theirs.format:
        raise ThetaError(f"{path} is {ours.format} on our side and {theirs.format} on theirs; resolve it by hand")
    registry = session.registry
    policy = load_policy(session.repo, registry)
    choice = None
    if strategy:
        try:
            options = parse_option_values(option_pairs)
            choice = resolve_choice(registry, strategy, options, "--strategy", "--strategy", "--option ")
        except SpecError as exc:
            raise ThetaError(str(exc)) from None
    override = Override(choice=choice, params=tuple(params) or None, skeleton=skeleton)
    outcome = MergeEngine(session, policy, override).merge(
        path, Versions(base=versions["base"], ours=ours, theirs=theirs)
    )
    data = dumps(outcome.metadata)
    for line in summary(path, outcome):
        say(line)
    if not outcome.clean:
        write_work_tree(session, path, data)
        for line in conflict_report(path, outcome, policy, command="resolve"):
            say(line)
        say(f"{path} is still in conflict: nothing was staged")
        return 1
    mode = stages["ours"][0]
    blob = session.repo.git("hash-object", "-w", "--no-filters", "--stdin", input=data).strip()
    session.repo.git("update-index", "--cacheinfo", f"{mode},{blob},{path}")
    session.repo.git("checkout-index", "-f", "--", path)  # written through the filter, as a checkout would
    say(f"{path}: resolved and staged; `git commit` concludes the merge")
    return 0


def write_work_tree(session: Session, path: str, metadata: bytes) -> None:
    """The checkpoint of `metadata` at `path`, written whole before it replaces the file."""
    target = session.repo.top_level / path
    partial = target.with_name(f".{target.name}.theta-resolve")
    try:
        with open(partial, "wb") as sink:
            problem = session.smudge(path, metadata, sink)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    if problem:
        say(problem)
