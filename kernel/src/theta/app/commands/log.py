"""`git theta log [PATH ...]`: the commits that changed tracked checkpoints, newest first."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def describe_options(options: dict[str, Any]) -> str:
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in options.items())


def text_lines(entry: Any) -> list[str]:
    from theta.diffs import quote_name
    from theta.sizes import human

    lines = [f"{entry.commit[:12]} {entry.date} {entry.author}: {entry.subject}"]
    for change in entry.files:
        path = quote_name(change.path)
        if change.deleted:
            lines.append(f"    {path}: deleted ({change.removed} parameter(s))")
            continue
        updates = ", ".join(f"{name} {count}" for name, count in change.updates.items()) or "none"
        lines.append(
            f"    {path}: {change.changed} changed, {change.added} added, {change.removed} removed;"
            f" updates: {updates}; stored {human(change.stored_bytes)}"
        )
        for merged in change.merged:
            options = describe_options(merged.options)
            lines.append(
                f"      merged {quote_name(merged.name)} with {merged.strategy}" + (f" ({options})" if options else "")
            )
    return lines


def json_object(entry: Any) -> dict[str, Any]:
    return {
        "commit": entry.commit,
        "parents": list(entry.parents),
        "date": entry.date,
        "author": entry.author,
        "subject": entry.subject,
        "stored_bytes": entry.stored_bytes,
        "files": [
            {
                "path": f.path,
                "changed": f.changed,
                "added": f.added,
                "removed": f.removed,
                "deleted": f.deleted,
                "updates": f.updates,
                "stored_bytes": f.stored_bytes,
                "merged": [{"name": m.name, "strategy": m.strategy, "options": m.options} for m in f.merged],
            }
            for f in entry.files
        ],
    }


def cmd_log(args: argparse.Namespace) -> int:
    from theta.diffing.history import history
    from theta.git.repo import Repo

    repo = Repo()
    try:
        entries = history(repo, args.rev, args.paths)
    finally:
        repo.close()
    if args.max_count is not None and args.max_count >= 0:  # as git log, a negative count is no limit
        entries = entries[: args.max_count]
    for entry in entries:
        if args.json:
            sys.stdout.write(json.dumps(json_object(entry)) + "\n")
        else:
            sys.stdout.write("\n".join(text_lines(entry)) + "\n")
    return 0


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "log",
        cmd_log,
        "the commits that changed tracked checkpoints: parameters, update types, bytes stored",
        examples=["git theta log", "git theta log model.safetensors -n 5 --json"],
    )
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--rev", default="HEAD", help="walk the history of this revision (default HEAD)")
    p.add_argument("-n", "--max-count", type=int, help="show at most this many commits")
    p.add_argument("--json", action="store_true", help="one JSON object per commit")
