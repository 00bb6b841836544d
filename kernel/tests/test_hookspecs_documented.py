"""Every hook is documented in docs/plugins.md, and every spec carries its calling rules."""

from __future__ import annotations

import inspect
from pathlib import Path

from theta import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def hook_names() -> list[str]:
    return [name for name, obj in vars(hookspecs).items() if name.startswith("theta_") and inspect.isfunction(obj)]


def test_every_hook_is_documented() -> None:
    text = DOCS.read_text()
    missing = [name for name in hook_names() if f"`{name}" not in text]
    assert hook_names() and not missing, f"hooks missing from docs/plugins.md: {missing}"


def test_every_hook_says_how_it_is_called() -> None:
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc, name
