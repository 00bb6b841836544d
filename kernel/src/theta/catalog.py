"""Which distribution provides a registered name, for install hints.

Every plugin distribution of this project declares what it registers in its pyproject.toml
(`[tool.theta] formats = ["pytorch"]`, and likewise `update_types`, `merge_strategies`,
`diff_renderers`); `scripts/catalog.py` gathers those declarations into `catalog.json`,
shipped with the kernel, and a test keeps the two in step. A name no distribution declares
has no hint: the kernel never guesses a distribution's name.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

CATALOG_FILE = "catalog.json"


@cache
def entries() -> dict[str, dict[str, str]]:
    """kind -> registered name -> distribution."""
    raw = resources.files("theta").joinpath(CATALOG_FILE).read_text()
    return json.loads(raw)


def provider(kind: str, name: str) -> str | None:
    return entries().get(kind, {}).get(name)
