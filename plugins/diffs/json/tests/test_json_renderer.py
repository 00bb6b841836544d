from __future__ import annotations

import json

from theta.testing.diff_contract import DiffRendererContract, sample_diffs
from theta_diff_json import PARAMETER_KEYS, SUMMARY_KEYS, file_object


class TestJsonContract(DiffRendererContract):
    renderer_name = "json"

    def check_output(self, text: str, target: bytes) -> None:
        objects = [json.loads(line) for line in text.splitlines()]
        assert [o["path"] for o in objects] == [d.path for d in sample_diffs()]


def test_shape_of_a_file_object() -> None:
    obj = file_object(sample_diffs()[0])
    assert list(obj) == ["path", "old", "new", "parameters", "summary"]
    assert (obj["old"], obj["new"]) == ("HEAD~1", "HEAD")
    assert all(tuple(p) == PARAMETER_KEYS for p in obj["parameters"])
    assert tuple(obj["summary"]) == SUMMARY_KEYS


def test_values_and_nulls() -> None:
    params = {p["name"]: p for p in file_object(sample_diffs()[0])["parameters"]}
    changed = params["layers.1.attn.weight"]
    assert changed["l2"] == 0.866 and changed["cosine"] == 0.9999 and changed["stored_bytes"] == 15
    assert changed["old_shape"] is None and changed["old_dtype"] is None
    reshaped = params["layers.0.mlp.weight"]
    assert reshaped["shape"] == [64, 128] and reshaped["old_shape"] == [128, 64] and reshaped["l2"] is None
    removed = params["layers.3.norm.bias"]
    assert removed["status"] == "removed" and removed["update"] is None and removed["stored_bytes"] is None
    assert params["embed.weight"]["status"] == "unchanged"


def test_working_tree_is_null() -> None:
    obj = file_object(sample_diffs()[1])
    assert obj["new"] is None and obj["summary"]["stored_bytes"] is None
