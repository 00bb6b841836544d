"""`git merge` of branches of a real safetensors checkpoint: per parameter against the merge base,
conflicts that lose nothing, and `git theta resolve`."""

from __future__ import annotations

import numpy as np
from merge_support import (
    MODEL,
    branches,
    load,
    make_model,
    merge,
    save,
    stored,
    tuned,
    unmerged,
    write_policy,
)

from theta.testing import GitRepo


def test_one_side_changes_merge_without_a_policy(repo: GitRepo) -> None:
    base = make_model()
    theirs = tuned(base, ["layers.0.attn.weight"], seed=1)
    theirs["extra.bias"] = np.arange(4, dtype=np.float32)  # added on their side
    del theirs["head.bias"]  # removed on their side
    ours = tuned(base, ["layers.2.attn.weight", "embed.weight"], seed=2)
    branches(repo, save(base), save(ours), save(theirs))
    result = merge(repo)
    assert result.returncode == 0, result.stderr
    merged = load(repo.read(MODEL))
    expected = dict(
        ours, **{"layers.0.attn.weight": theirs["layers.0.attn.weight"], "extra.bias": theirs["extra.bias"]}
    )
    del expected["head.bias"]
    assert sorted(merged) == sorted(expected)
    assert all(np.array_equal(merged[k], expected[k]) for k in expected)
    assert repo.status() == ""
    assert not any("merge" in p for p in stored(repo)["parameters"].values())  # nothing went to the policy


def test_the_same_change_on_both_sides_is_taken(repo: GitRepo) -> None:
    base = make_model()
    both = tuned(base, ["layers.1.attn.weight"], seed=4)
    branches(repo, save(base), save(both), save(tuned(both, ["head.bias"], seed=5)))
    assert merge(repo).returncode == 0
    assert np.array_equal(load(repo.read(MODEL))["layers.1.attn.weight"], both["layers.1.attn.weight"])


def test_a_conflict_loses_nothing_and_names_each_parameter(repo: GitRepo) -> None:
    base = make_model()
    ours = tuned(base, ["embed.weight", "layers.0.attn.weight"], seed=1)
    theirs = tuned(base, ["embed.weight", "layers.1.attn.weight", "layers.2.norm.weight"], seed=2)
    branches(repo, save(base), save(ours), save(theirs))
    result = merge(repo)
    assert result.returncode != 0
    assert "CONFLICT" in result.stdout
    assert "'embed.weight'" in result.stderr and "default (fail)" in result.stderr
    assert "git theta resolve model.safetensors --strategy NAME" in result.stderr
    assert "Traceback" not in result.stderr
    assert unmerged(repo) == ["1", "2", "3"]
    # the work tree holds a valid checkpoint: their clean changes, ours for the conflict
    merged = load(repo.read(MODEL))
    assert np.array_equal(merged["embed.weight"], ours["embed.weight"])
    assert np.array_equal(merged["layers.0.attn.weight"], ours["layers.0.attn.weight"])
    assert np.array_equal(merged["layers.1.attn.weight"], theirs["layers.1.attn.weight"])
    assert np.array_equal(merged["layers.2.norm.weight"], theirs["layers.2.norm.weight"])


def test_resolve_remerges_the_conflicts_and_stages_the_file(repo: GitRepo) -> None:
    base = make_model()
    ours = tuned(base, ["embed.weight", "layers.0.attn.weight"], seed=1)
    theirs = tuned(base, ["embed.weight", "head.bias", "layers.1.attn.weight"], seed=2)
    branches(repo, save(base), save(ours), save(theirs))
    assert merge(repo).returncode != 0
    done = repo.theta("resolve", MODEL, "--strategy", "average", "--option", "weight=0.25")
    assert "resolved" in done.stderr
    assert unmerged(repo) == []
    merged = load(repo.read(MODEL))
    expected = np.float32(0.75) * ours["embed.weight"] + np.float32(0.25) * theirs["embed.weight"]
    assert np.array_equal(merged["embed.weight"], expected)
    assert np.array_equal(merged["head.bias"], theirs["head.bias"])
    assert np.array_equal(merged["layers.0.attn.weight"], ours["layers.0.attn.weight"])
    repo.git("commit", "-q", "--no-edit")
    assert repo.status() == ""
    record = stored(repo)["parameters"]["embed.weight"]["merge"]
    assert record == {"strategy": "average", "options": {"weight": 0.25}}


def test_resolve_with_params_and_a_strategy_that_conflicts_again(repo: GitRepo) -> None:
    base = make_model()
    ours = tuned(base, ["embed.weight", "layers.0.attn.weight"], seed=1)
    theirs = tuned(base, ["embed.weight", "layers.0.attn.weight"], seed=2)
    branches(repo, save(base), save(ours), save(theirs))
    assert merge(repo).returncode != 0
    partial = repo.theta("resolve", MODEL, "--strategy", "theirs", "--params", "layers.*", check=False)
    assert partial.returncode == 1
    assert "'embed.weight'" in partial.stderr and "layers.0.attn.weight" not in partial.stderr.split("conflict:")[1]
    assert unmerged(repo) == ["1", "2", "3"]  # still in conflict: nothing staged
    assert np.array_equal(load(repo.read(MODEL))["layers.0.attn.weight"], theirs["layers.0.attn.weight"])
    repo.theta("resolve", MODEL, "--strategy", "ours", "--params", "embed.*", "--params", "layers.*")
    merged = load(repo.read(MODEL))
    assert np.array_equal(merged["embed.weight"], ours["embed.weight"])
    assert np.array_equal(merged["layers.0.attn.weight"], ours["layers.0.attn.weight"])
    assert unmerged(repo) == []


def test_resolve_refuses_a_path_without_conflict(repo: GitRepo) -> None:
    base = make_model()
    branches(repo, save(base), save(tuned(base, ["embed.weight"], 1)), save(tuned(base, ["head.bias"], 2)))
    result = repo.theta("resolve", MODEL, "--strategy", "average", check=False)
    assert result.returncode == 1 and "is not in conflict" in result.stderr


def test_the_policy_merges_and_records_strategy_and_options(repo: GitRepo) -> None:
    base = make_model()
    ours = tuned(base, ["embed.weight", "layers.0.norm.weight"], seed=1)
    theirs = tuned(base, ["embed.weight", "layers.0.norm.weight"], seed=2)
    branches(repo, save(base), save(ours), save(theirs))
    write_policy(
        repo,
        'version = 1\ndefault = { strategy = "fail" }\n\n[[rules]]\nparams = ["*.norm.*"]\nstrategy = "average"\n'
        'options = { weight = 0.5 }\n\n[[rules]]\nparams = ["*"]\nstrategy = "task-arithmetic"\n',
    )
    result = merge(repo)
    assert result.returncode == 0, result.stderr
    assert "1 with average, 1 with task-arithmetic" in result.stderr
    merged = load(repo.read(MODEL))
    norm = np.float32(0.5) * ours["layers.0.norm.weight"] + np.float32(0.5) * theirs["layers.0.norm.weight"]
    assert np.array_equal(merged["layers.0.norm.weight"], norm)
    b, o, t = base["embed.weight"], ours["embed.weight"], theirs["embed.weight"]
    assert np.array_equal(merged["embed.weight"], b + ((o - b) + (t - b)))
    parameters = stored(repo)["parameters"]
    assert parameters["embed.weight"]["merge"] == {
        "strategy": "task-arithmetic",
        "options": {"scale": 1.0, "weights": [1.0, 1.0]},
    }
    assert "merge" not in parameters["head.bias"]
    assert repo.status() == ""


def test_a_strategy_that_cannot_apply_is_a_conflict_with_its_reason(repo: GitRepo) -> None:
    base = make_model()
    base["steps"] = np.array([1, 2, 3], dtype=np.int64)
    ours = tuned(base, ["embed.weight"], seed=1)
    ours["steps"] = np.array([1, 2, 4], dtype=np.int64)
    theirs = tuned(base, ["embed.weight"], seed=2)
    theirs["steps"] = np.array([1, 2, 5], dtype=np.int64)
    branches(repo, save(base), save(ours), save(theirs))
    write_policy(repo, 'version = 1\ndefault = { strategy = "average" }\n')
    result = merge(repo)
    assert result.returncode == 1
    assert "'steps': default (average): ours is int64: only floating-point tensors can be combined" in result.stderr
    merged = load(repo.read(MODEL))
    assert np.array_equal(merged["steps"], ours["steps"])
    expected = np.float32(0.5) * ours["embed.weight"] + np.float32(0.5) * theirs["embed.weight"]
    assert np.array_equal(merged["embed.weight"], expected)


def test_environment_variable_overrides_the_policy(repo: GitRepo) -> None:
    base = make_model()
    ours, theirs = tuned(base, ["embed.weight"], seed=1), tuned(base, ["embed.weight"], seed=2)
    branches(repo, save(base), save(ours), save(theirs))
    result = merge(repo, env={"THETA_MERGE_STRATEGY": "theirs"})
    assert result.returncode == 0, result.stderr
    assert np.array_equal(load(repo.read(MODEL))["embed.weight"], theirs["embed.weight"])
    assert stored(repo)["parameters"]["embed.weight"]["merge"] == {"strategy": "theirs", "options": {}}


def test_non_tensor_state_changed_on_both_sides_is_a_conflict(repo: GitRepo) -> None:
    base = make_model()
    ours, theirs = tuned(base, ["embed.weight"], seed=1), tuned(base, ["head.bias"], seed=2)
    branches(repo, save(base, {"step": "0"}), save(ours, {"step": "100"}), save(theirs, {"step": "200"}))
    result = merge(repo)
    assert result.returncode == 1
    assert "non-tensor state" in result.stderr and "--skeleton ours|theirs" in result.stderr
    merged = load(repo.read(MODEL))  # both sides' tensor changes are kept
    assert np.array_equal(merged["embed.weight"], ours["embed.weight"])
    assert np.array_equal(merged["head.bias"], theirs["head.bias"])
    repo.theta("resolve", MODEL, "--skeleton", "theirs")
    from safetensors import safe_open

    with safe_open(str(repo.path / MODEL), "numpy") as f:
        assert f.metadata() == {"step": "200"}
    assert unmerged(repo) == []


def test_non_tensor_state_changed_on_one_side_is_taken(repo: GitRepo) -> None:
    base = make_model()
    ours, theirs = tuned(base, ["embed.weight"], seed=1), tuned(base, ["head.bias"], seed=2)
    branches(repo, save(base, {"step": "0"}), save(ours, {"step": "0"}), save(theirs, {"step": "200"}))
    assert merge(repo).returncode == 0
    from safetensors import safe_open

    with safe_open(str(repo.path / MODEL), "numpy") as f:
        assert f.metadata() == {"step": "200"}
        assert np.array_equal(f.get_tensor("embed.weight"), ours["embed.weight"])
    assert repo.status() == ""
