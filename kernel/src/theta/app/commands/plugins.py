"""`git theta plugins [--json]`: what is installed and what it registers."""

from __future__ import annotations

import argparse
import json
import sys


def cmd_plugins(args: argparse.Namespace) -> int:
    from theta.plugins import default_manager

    manager = default_manager()
    registry = manager.registry
    rows = []
    for record in manager.records:
        registered = {
            kind: names
            for kind, entries in registry.entries.items()
            if (names := [n for n, r in entries.items() if r.plugin == record.name])
        }
        rows.append(
            {
                "name": record.name,
                "distribution": record.distribution,
                "version": record.version,
                "hooks": list(record.hooks),
                "registers": registered,
                "error": registry.problems.get(record.name, record.error),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            what = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["registers"].items()) or "-"
            status = f"LEFT OUT: {row['error']}" if row["error"] else what
            print(f"{row['name']:<16} {row['distribution']} {row['version']:<10} {status}")
    if any(row["error"] for row in rows):
        print("theta: warning: some plugins were left out; every other plugin works", file=sys.stderr)
    return 0


def register(add) -> None:  # type: ignore[no-untyped-def]
    p = add(
        "plugins",
        cmd_plugins,
        "list installed plugins and what they register",
        examples=["git theta plugins", "git theta plugins --json"],
        needs_repo=False,
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
