"""git's merge driver: `merge.theta.driver = git-theta merge %O %A %B %P`.

git hands over the three stored versions (metadata files) of one checkpoint; the merged
metadata goes to %A. Exit codes follow git's contract:
- 0: merged; %A holds the result.
- 1: conflict; %A holds a valid metadata file (every merged parameter, and ours for each
  conflicting one), and stderr names each conflicting parameter and how to go on.
- `FAILED` (above 128): the driver could not do its work (a damaged metadata file, an
  invalid merge policy, objects that cannot be fetched, an internal error); %A is left as
  it was. git 2.42 and later then fail the merge rather than record a conflict.
Every message is one line per fact, never a traceback.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import traceback
from pathlib import Path

from theta.errors import ThetaError
from theta.merging.engine import MergeEngine, Versions
from theta.merging.policy import load_policy
from theta.merging.report import conflict_report, summary
from theta.metadata import Metadata, dumps, loads, looks_like_metadata
from theta.session import Session

MERGED, CONFLICT, FAILED = 0, 1, 129


class Unmergeable(Exception):
    """A version git gave is not a Theta metadata file: only a person can merge it."""


def say(message: str) -> None:
    print(f"theta: merge: {message}", file=sys.stderr)


def read_version(path: Path, label: str) -> Metadata | None:
    """One version git gave the driver; None when it is empty (no merge base, or deleted)."""
    data = path.read_bytes()
    if not data:
        return None
    if not looks_like_metadata(data[:256]):
        raise Unmergeable(f"{label} is not a Theta metadata file (was it committed before the file was tracked?)")
    return loads(data, label)


def merge(base_file: str, ours_file: str, theirs_file: str, pathname: str) -> int:
    started = time.monotonic()
    try:
        return _merge(base_file, ours_file, theirs_file, pathname)
    finally:
        if os.environ.get("THETA_TRACE", "") not in ("", "0"):
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            elapsed = time.monotonic() - started
            print(f"theta: trace: merge driver {pathname} took {elapsed:.2f}s, peak RSS {peak} MiB", file=sys.stderr)


def _merge(base_file: str, ours_file: str, theirs_file: str, pathname: str) -> int:
    session: Session | None = None
    try:
        base = read_version(Path(base_file), f"{pathname} (merge base)")
        ours = read_version(Path(ours_file), f"{pathname} (ours)")
        theirs = read_version(Path(theirs_file), f"{pathname} (theirs)")
        if ours is None or theirs is None:
            raise Unmergeable(f"{pathname} was emptied on {'our' if ours is None else 'their'} side")
        if ours.format != theirs.format:
            raise Unmergeable(f"{pathname} is {ours.format} on our side and {theirs.format} on theirs")
        session = Session()
        policy = load_policy(session.repo, session.registry)
        outcome = MergeEngine(session, policy).merge(pathname, Versions(base=base, ours=ours, theirs=theirs))
        result = dumps(outcome.metadata)
    except Unmergeable as exc:
        say(f"{exc}; resolve this conflict by hand (git checkout --ours/--theirs -- {pathname})")
        return CONFLICT
    except ThetaError as exc:
        say(f"error: {exc} (the merge driver failed: this is not a conflict; fix the cause and merge again)")
        return FAILED
    except RecursionError:
        say(f"error: {pathname}: a metadata file is nested too deeply to be one Theta wrote (the merge driver failed)")
        return FAILED
    except Exception as exc:
        if os.environ.get("THETA_TRACE", "") not in ("", "0"):
            traceback.print_exc()
        where = f"{pathname}: {type(exc).__name__}: {exc}"
        say(f"internal error: {where} (the merge driver failed; THETA_TRACE=1 shows where)")
        return FAILED
    finally:
        if session is not None:
            session.close()
    Path(ours_file).write_bytes(result)
    for line in summary(pathname, outcome):
        say(line)
    if outcome.clean:
        return MERGED
    for line in conflict_report(pathname, outcome, policy):
        say(line)
    return CONFLICT
