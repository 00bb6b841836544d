"""A plugin on its own: its directory copied out of the work tree, installed in a fresh
environment with only the kernel, `theta-update-dense`, its dependencies and its `[test]`
extra, and its own tests run there.

A plugin adds one small test file::

    @pytest.mark.slow
    def test_passes_its_own_tests_alone(tmp_path: Path) -> None:
        run_plugin_tests_in_fresh_environment(Path(__file__).parents[1], tmp_path, leave_out=__file__)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from theta.testing.environments import LEFTOVERS, FreshEnvironment

# Set for the tests of a copy: a self-copy test that runs there would copy the copy, and so on.
INSIDE_A_COPY = "THETA_TESTING_PLUGIN_COPY"
_OUTPUT_TAIL = 20_000


def run_plugin_tests_in_fresh_environment(
    plugin_dir: Path | str,
    tmp_path: Path,
    *,
    leave_out: Path | str,
    before_tests: Callable[[Path], None] | None = None,
    timeout: float = 1500,
) -> str:
    """Run the tests of a copy of `plugin_dir` in a fresh environment; returns pytest's output.

    `leave_out` is the test file that calls this (it is not run in the copy). `before_tests`,
    given the environment's bin directory, runs after the plugin is installed with only its
    own dependencies and before its `[test]` extra is added: the place for checks that the
    plugin works without the frameworks its tests use.
    """
    if os.environ.get(INSIDE_A_COPY):
        pytest.fail(f"already running the tests of a plugin copy: leave this file out ({leave_out})")
    plugin = Path(plugin_dir).resolve()
    left_out = Path(leave_out).resolve().relative_to(plugin)
    copy = Path(shutil.copytree(plugin, tmp_path / "plugin" / plugin.name, ignore=shutil.ignore_patterns(*LEFTOVERS)))
    env = FreshEnvironment(tmp_path / "env")
    if before_tests is not None:
        env.install_project(copy, copy=False, origin=plugin)
        start = time.monotonic()
        before_tests(env.bin_dir)
        env.timings.append(("checks before the [test] extra", time.monotonic() - start))
    env.install_project(copy, extra="test", copy=False, origin=plugin)

    run_env = {k: v for k, v in env.env().items() if not k.startswith(("PYTEST_", "THETA_", "GIT_"))}
    run_env[INSIDE_A_COPY] = "1"
    args = [
        str(env.python), "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider",
        "-c", str(copy / "pyproject.toml"), "--rootdir", str(copy), "--import-mode=importlib",
        f"--basetemp={tmp_path / 'basetemp'}", "--ignore", str(copy / left_out), str(copy),
    ]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(args, cwd=copy, env=run_env, capture_output=True, text=True, timeout=timeout)
    env.timings.append(("pytest", time.monotonic() - start))
    output = proc.stdout + proc.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else "no output"
    steps = "".join(f"\n  {what}: {took:.1f} s" for what, took in env.timings)
    print(f"{plugin.name} alone in a fresh environment: {summary}{steps}")
    passed = re.search(r"(\d+) passed", output)
    assert proc.returncode == 0 and passed and int(passed.group(1)) > 0, (
        f"the tests of {plugin.name}, alone in a fresh environment, did not pass (exit {proc.returncode}):\n"
        + output[-_OUTPUT_TAIL:]
    )
    shutil.rmtree(env.root, ignore_errors=True)  # a gigabyte with a framework; kept when the tests fail
    return output
