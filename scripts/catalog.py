"""Write kernel/src/theta/catalog.json from the `[tool.theta]` tables of the plugins' pyproject.toml files.

Usage: python scripts/catalog.py [--check]   (--check exits 1 when the file is out of date)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "kernel" / "src" / "theta" / "catalog.json"
KINDS = ("formats", "update_types", "merge_strategies", "diff_renderers")


def declared(root: Path = ROOT) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    for pyproject in sorted(root.glob("plugins/*/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())
        table = project.get("tool", {}).get("theta", {})
        for kind in KINDS:
            for name in table.get(kind, []):
                found[kind][name] = project["project"]["name"]
    return {kind: dict(sorted(names.items())) for kind, names in found.items()}


def render(catalog: dict[str, dict[str, str]]) -> str:
    return json.dumps(catalog, indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render(declared())
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is out of date: run `python scripts/catalog.py`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
