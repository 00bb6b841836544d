"""Hook specifications: the whole contract between the kernel and its plugins.

Specs only. Each registration hook is called once for every plugin that implements it, with
a `register` callback; the kernel validates each object it is given and rejects a name that
two plugins register, naming both distributions. Implementations may accept fewer arguments
than a spec lists, so new arguments can be added to a spec without breaking plugins.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from theta.diffs import DiffRenderer
from theta.formats import CheckpointFormat
from theta.merges import MergeStrategy
from theta.updates import UpdateType

hookspec = pluggy.HookspecMarker("theta")


# ---- checkpoint formats ----------------------------------------------------------------


@hookspec
def theta_register_formats(register: Callable[[CheckpointFormat], None]) -> None:
    """Register checkpoint formats: call `register(fmt)` once per `CheckpointFormat`.

    Called once per plugin when the registry is built. The format's `name` must be unique
    across all plugins.
    """


# ---- update types ----------------------------------------------------------------------


@hookspec
def theta_register_update_types(register: Callable[[UpdateType], None]) -> None:
    """Register update types: call `register(update_type)` once per `UpdateType`.

    Called once per plugin when the registry is built. Names are unique across plugins;
    `dense` must exist (it is the fallback whenever no other type applies).
    """


# ---- diff renderers --------------------------------------------------------------------


@hookspec
def theta_register_diff_renderers(register: Callable[[DiffRenderer], None]) -> None:
    """Register diff renderers: call `register(renderer)` once per `DiffRenderer`.

    Called once per plugin when the registry is built; names are unique across plugins.
    `git theta diff --format NAME` (and `git config theta.diffFormat NAME` for `git diff`)
    picks one; the kernel then calls `renderer.render(diffs, output)` with an iterable of
    `theta.diffs.FileDiff`, one per file as it is computed, and a `RenderOutput` (a text
    stream, whether to colour it, and the file to write when `writes_file` is True).
    """


# ---- merge strategies ------------------------------------------------------------------


@hookspec
def theta_register_merge_strategies(register: Callable[[MergeStrategy], None]) -> None:
    """Register merge strategies: call `register(strategy)` once per `MergeStrategy`.

    Called once per plugin when the registry is built; names are unique across plugins. A
    merge policy file (`.theta/merge-policy.toml`) may name only strategies registered here.
    During a merge the kernel calls `strategy.choose(name, options)` and, unless that decides,
    `strategy.merge(name, base, ours, theirs, options)` for each parameter both branches
    changed differently, one parameter at a time (see docs/merging.md).
    """
