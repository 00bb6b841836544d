"""The `json` diff renderer: one JSON object per file, one file per line.

    {"path": ..., "old": REV, "new": REV,
     "parameters": [{"name", "status", "dtype", "shape", "old_dtype", "old_shape", "l2",
                     "relative", "max_abs", "changed_fraction", "cosine", "update",
                     "stored_bytes"}, ...],
     "summary": {"changed", "added", "removed", "unchanged", "reshaped", "stored_bytes"}}

Every parameter is listed, unchanged ones included; keys that do not apply are null.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from attrs import frozen

import theta
from theta.diffs import DiffRenderer, FileDiff, ParameterDiff, RenderOutput

PARAMETER_KEYS = (
    "name",
    "status",
    "dtype",
    "shape",
    "old_dtype",
    "old_shape",
    "l2",
    "relative",
    "max_abs",
    "changed_fraction",
    "cosine",
    "update",
    "stored_bytes",
)
SUMMARY_KEYS = ("changed", "added", "removed", "unchanged", "reshaped", "stored_bytes")


def parameter_object(param: ParameterDiff) -> dict[str, Any]:
    out = {key: getattr(param, key) for key in PARAMETER_KEYS}
    for key in ("shape", "old_shape"):
        if out[key] is not None:
            out[key] = list(out[key])
    return out


def file_object(diff: FileDiff) -> dict[str, Any]:
    return {
        "path": diff.path,
        "old": diff.old,
        "new": diff.new,
        "parameters": [parameter_object(p) for p in diff.parameters],
        "summary": {key: getattr(diff.summary, key) for key in SUMMARY_KEYS},
    }


@frozen
class JsonRenderer(DiffRenderer):
    name = "json"

    def render(self, diffs: Iterable[FileDiff], output: RenderOutput) -> None:
        for diff in diffs:
            output.stream.write(json.dumps(file_object(diff), allow_nan=False) + "\n")
            output.stream.flush()


@theta.hookimpl
def theta_register_diff_renderers(register: Callable[[DiffRenderer], None]) -> None:
    register(JsonRenderer())
