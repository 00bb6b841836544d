"""Test helpers for the kernel and for plugins: a pytest plugin, contract test classes, fresh
environments.

Installing theta-kernel registers this package as a pytest plugin (the `pytest11` entry
point `theta`), so any test suite gets its fixtures: `git_env` (an isolated HOME with git,
git-lfs and Theta installed), `remote` (a bare repository reached through a file:// URL),
`repo` (a work tree with `repo.git(...)` and `repo.theta(...)`) and `theta_plugins` (a fresh
plugin manager). `FormatContract` and `UpdateTypeContract` are the suites every format and
update type subclasses; `run_plugin_tests_in_fresh_environment` runs a plugin's tests from a
copy of its directory, in a fresh environment holding only what it declares.
`theta.testing.updates` has PyTorch-built samples for update-type tests (PyTorch imported
on use).
"""

from theta.testing.checkpoints import read_checkpoint, write_checkpoint
from theta.testing.contracts import FormatContract, UpdateTypeContract, encode_exactly
from theta.testing.diff_contract import DiffRendererContract as DiffRendererContract
from theta.testing.environments import FreshEnvironment, distribution_source, fresh_environment
from theta.testing.fixtures import git_env, remote, repo, theta_plugins
from theta.testing.merge_contract import MergeStrategyContract as MergeStrategyContract
from theta.testing.reporting import pytest_configure, pytest_terminal_summary
from theta.testing.repos import GIT_IDENTITY, GitRepo, clone, git_theta_command, isolated_git_env, setup_git_home
from theta.testing.samples import Change
from theta.testing.standalone import run_plugin_tests_in_fresh_environment

__all__ = [
    "GIT_IDENTITY",
    "Change",
    "FormatContract",
    "FreshEnvironment",
    "GitRepo",
    "UpdateTypeContract",
    "clone",
    "distribution_source",
    "encode_exactly",
    "fresh_environment",
    "git_env",
    "git_theta_command",
    "isolated_git_env",
    "pytest_configure",
    "pytest_terminal_summary",
    "read_checkpoint",
    "remote",
    "repo",
    "run_plugin_tests_in_fresh_environment",
    "setup_git_home",
    "theta_plugins",
    "write_checkpoint",
]
