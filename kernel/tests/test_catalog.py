"""Install hints come from what the plugins declare, and the declarations are true."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from theta import catalog
from theta.plugins import KINDS, default_manager

ROOT = Path(__file__).resolve().parents[2]


def test_catalog_is_current_with_the_plugins_declarations() -> None:
    proc = subprocess.run([sys.executable, "scripts/catalog.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_each_installed_plugin_registers_what_it_declares() -> None:
    registry = default_manager().registry
    installed = {d.metadata["Name"] for d in metadata.distributions()}
    for kind in KINDS:
        registered = {name: r.distribution for name, r in registry.entries[kind.key].items()}
        for name, distribution in registered.items():
            if distribution.startswith("theta-"):
                assert catalog.provider(kind.key, name) == distribution, (kind.key, name)
        for name, distribution in catalog.entries()[kind.key].items():
            if distribution in installed:
                assert registered.get(name) == distribution, f"{distribution} declares {kind.key} {name!r}"
