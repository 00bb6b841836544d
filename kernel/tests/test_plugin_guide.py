"""The examples of docs/plugins.md are real code: written out as plugins and run against the contracts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
BLOCK = re.compile(r"```python\n# (?P<path>\S+)\n(?P<code>.*?)```", re.S)

CONFTEST = """
import pytest

import theta_format_tsr
import theta_update_changed
from theta.plugins import PluginManager


@pytest.fixture
def theta_plugins():
    manager = PluginManager()
    manager.load_entry_points()
    manager.register(theta_format_tsr, name="tsr", distribution="theta-format-tsr")
    manager.register(theta_update_changed, name="changed", distribution="theta-update-changed")
    return manager
"""


def guide_files() -> dict[str, str]:
    return {m["path"]: m["code"] for m in BLOCK.finditer(GUIDE.read_text())}


def test_the_guide_holds_a_format_and_an_update_type_with_their_tests() -> None:
    assert set(guide_files()) == {
        "theta_format_tsr/__init__.py",
        "tests/test_tsr.py",
        "theta_update_changed/__init__.py",
        "tests/test_changed.py",
    }


def test_the_guide_examples_pass_the_contracts(tmp_path: Path) -> None:
    for relative, code in guide_files().items():
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code)
    (tmp_path / "tests" / "conftest.py").write_text(CONFTEST)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = int(re.search(r"(\d+) passed", proc.stdout).group(1))  # type: ignore[union-attr]
    assert passed >= 10, proc.stdout
