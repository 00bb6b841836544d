"""`git theta log`: commits that changed a model, their counts, update types, storage and merges."""

from __future__ import annotations

import json

import numpy as np
from diff_samples import MODEL, arrays
from diff_samples import version_one as make_v1
from safetensors.numpy import save

from theta.testing import GitRepo


def log_json(repo: GitRepo, *args: str) -> list[dict]:
    return [json.loads(line) for line in repo.theta("log", "--json", *args).stdout.splitlines()]


def objects_of(metadata: dict) -> dict[str, int]:
    found = {metadata["skeleton"]["oid"]: metadata["skeleton"]["size"]}
    for param in metadata["parameters"].values():
        for step in param["steps"]:
            found.update({o["oid"]: o["size"] for o in step["objects"].values()})
    return found


def edited(state: dict, name: str, delta: float) -> dict:
    out = dict(state)
    out[name] = (state[name] + np.float32(delta)).astype(state[name].dtype)
    return out


def test_counts_updates_and_storage_per_commit(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    base = arrays(make_v1())
    repo.write(MODEL, save(base))
    repo.commit_all("v1")
    v2 = edited(base, "fc1.bias", 0.5)
    del v2["norm.bias"]
    repo.write(MODEL, save(v2))
    repo.commit_all("v2")
    repo.write("notes.txt", b"not a model\n")
    repo.commit_all("notes only")
    entries = log_json(repo)
    assert [e["subject"] for e in entries] == ["v2", "v1"]  # newest first; the notes commit changed no model
    (v2_file,) = entries[0]["files"]
    assert (v2_file["changed"], v2_file["added"], v2_file["removed"]) == (1, 0, 1)
    stored = json.loads(repo.blob(f"HEAD:{MODEL}"))
    assert v2_file["updates"] == {stored["parameters"]["fc1.bias"]["steps"][-1]["update"]: 1}
    first, second = objects_of(json.loads(repo.blob(f"HEAD~2:{MODEL}"))), objects_of(stored)
    assert entries[1]["stored_bytes"] == sum(first.values())
    assert v2_file["stored_bytes"] == sum(size for oid, size in second.items() if oid not in first)
    assert entries[1]["files"][0]["added"] == len(base)
    text = repo.theta("log", "-n", "1").stdout.splitlines()
    assert text[0].endswith("v2") and text[1].strip().startswith(f"{MODEL}: 1 changed, 0 added, 1 removed; updates:")
    assert repo.theta("log", "other.safetensors").stdout == ""
    assert repo.theta("log", "-n", "-1").stdout == repo.theta("log").stdout  # as git log: no limit


def test_merged_parameters_show_their_strategy(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    base = arrays(make_v1())
    repo.write(MODEL, save(base))
    repo.commit_all("base")
    repo.git("checkout", "-q", "-b", "side")
    repo.write(MODEL, save(edited(base, "fc1.bias", 0.25)))
    repo.commit_all("side tune")
    repo.git("checkout", "-q", "main")
    repo.write(MODEL, save(edited(base, "fc1.bias", 0.75)))
    repo.commit_all("main tune")
    env = {**repo.env, "THETA_MERGE_STRATEGY": "average"}
    merged = GitRepo(repo.path, env).git("merge", "--no-edit", "-q", "side", check=False)
    assert merged.returncode == 0, merged.stderr
    entries = log_json(repo)
    assert entries[0]["parents"] and len(entries[0]["parents"]) == 2
    (change,) = entries[0]["files"]
    assert change["changed"] == 1  # against the first parent
    assert [(m["name"], m["strategy"]) for m in change["merged"]] == [("fc1.bias", "average")]
    assert change["stored_bytes"] > 0  # the averaged tensor is new
    text = repo.theta("log", "-n", "1").stdout
    assert "merged fc1.bias with average" in text
    assert {e["subject"] for e in entries[1:3]} == {"main tune", "side tune"} and entries[3]["subject"] == "base"
