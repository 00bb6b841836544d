"""The merge policy: its spec examples, rule precedence and `paths`, invalid files through a real
merge, and `git theta merge-policy check`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from merge_support import MODEL, POLICY, branches, load, make_model, merge, save, tuned, write_policy

import theta_merge_basic
import theta_merge_linear
import theta_merge_slerp
import theta_merge_ties
from theta.errors import SpecError
from theta.merging.policy import parse_policy
from theta.plugins import PluginManager, Registry
from theta.testing import GitRepo

SPEC = Path(__file__).resolve().parents[1] / "specs" / "merge-policy" / "v1"
VALID = sorted((SPEC / "valid").glob("*.toml"))
INVALID = sorted((SPEC / "invalid").glob("*.toml"))


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Exactly the four merge-strategy distributions of this repository."""
    manager = PluginManager()
    for module in (theta_merge_basic, theta_merge_linear, theta_merge_slerp, theta_merge_ties):
        manager.register(module, name=module.__name__)
    return manager.registry


def test_spec_examples_exist() -> None:
    assert len(VALID) >= 3 and len(INVALID) >= 10


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_policies_load(path: Path, registry: Registry) -> None:
    policy = parse_policy(path.read_bytes(), path.name, registry)
    assert policy.default.strategy


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_policies_are_refused_in_one_line(path: Path, registry: Registry) -> None:
    expected = path.with_suffix(".error").read_text().strip()
    with pytest.raises(SpecError) as caught:
        parse_policy(path.read_bytes(), path.name, registry)
    assert str(caught.value) == f"{path.name}: {expected}"
    assert "\n" not in str(caught.value)


def test_first_matching_rule_wins_and_paths_restrict_a_rule(registry: Registry) -> None:
    policy = parse_policy((SPEC / "valid" / "issue-example.toml").read_bytes(), "p.toml", registry)
    choose = policy.choose
    assert choose("model.safetensors", "layers.0.norm.weight").strategy == "average"
    assert choose("model.safetensors", "ln_f.weight").strategy == "ties"  # `*.ln_*` needs a dot before ln_
    assert choose("model.safetensors", "h.ln_1.weight").strategy == "average"
    assert choose("model.pt", "layers.0.norm.weight").strategy == "ties"  # paths = ["*.safetensors"]
    assert choose("models/a.safetensors", "x.norm.y").source == "rules[0]"
    assert choose("model.pt", "anything").source == "rules[1]"
    every = parse_policy((SPEC / "valid" / "every-strategy.toml").read_bytes(), "p.toml", registry)
    assert every.choose("x.bin", "a.mlp.w").strategy == "dare"
    assert every.choose("x.safetensors", "a.mlp.w").strategy == "base"  # dare needs paths; `[!x]*` matches
    assert every.choose("x.safetensors", "xa.mlp.w").strategy == "ours"  # no rule: the default
    assert every.choose("m", "embed.weight").options.__class__.__name__ == "NoOptions"


def test_globs_match_whole_names_not_substrings(registry: Registry) -> None:
    policy = parse_policy(b'version = 1\n[[rules]]\nparams = ["norm"]\nstrategy = "theirs"\n', "p.toml", registry)
    assert policy.choose("m", "norm").strategy == "theirs"
    assert policy.choose("m", "layers.0.norm").strategy == "fail"
    assert policy.choose("m", "Norm").strategy == "fail"  # case-sensitive


def test_rule_precedence_and_paths_in_a_real_merge(repo: GitRepo) -> None:
    base = make_model()
    names = ["layers.0.norm.weight", "layers.1.attn.weight", "head.bias"]
    ours, theirs = tuned(base, names, seed=1), tuned(base, names, seed=2)
    branches(repo, save(base), save(ours), save(theirs))
    write_policy(
        repo,
        'version = 1\ndefault = { strategy = "ours" }\n\n'
        '[[rules]]\nparams = ["*.norm.*"]\npaths = ["other/*"]\nstrategy = "base"\n\n'
        '[[rules]]\nparams = ["layers.*"]\nstrategy = "theirs"\n\n'
        '[[rules]]\nparams = ["*"]\nstrategy = "base"\n',
    )
    assert merge(repo).returncode == 0
    merged = load(repo.read(MODEL))
    assert np.array_equal(merged["layers.0.norm.weight"], theirs["layers.0.norm.weight"])  # rules[0] is for other/*
    assert np.array_equal(merged["layers.1.attn.weight"], theirs["layers.1.attn.weight"])
    assert np.array_equal(merged["head.bias"], base["head.bias"])  # rules[2]: before the default


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('version = 1\n[[rules]]\nparams = ["*"]\nstrategy = "tiez"\n', "rules[0].strategy: unknown strategy 'tiez'"),
        (
            'version = 1\n[[rules]]\nparams = ["*"]\nstrategy = "average"\noptions = { wieght = 1 }\n',
            "rules[0].options: unknown option(s) 'wieght'",
        ),
        ('version = 1\ndefault = { strategy = "ties", options = { density = "high" } }\n', "default.options.density"),
        ("version = 1\nrule = []\n", "(top level): unknown field(s): rule"),
        ('version = 1\n[[rules]]\nparams = ["[*"]\nstrategy = "average"\n', "rules[0].params[0]: bad glob"),
    ],
)
def test_an_invalid_policy_fails_the_merge_in_one_line(repo: GitRepo, text: str, message: str) -> None:
    base = make_model()
    branches(repo, save(base), save(tuned(base, ["embed.weight"], 1)), save(tuned(base, ["embed.weight"], 2)))
    write_policy(repo, text)
    result = merge(repo)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("theta: merge: error:")]
    assert len(lines) == 1 and f"{POLICY}: {message}" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert (
        load(repo.read(MODEL))["embed.weight"].tobytes() == tuned(base, ["embed.weight"], 1)["embed.weight"].tobytes()
    )


def test_the_policy_setting_points_elsewhere(repo: GitRepo) -> None:
    base = make_model()
    ours, theirs = tuned(base, ["embed.weight"], 1), tuned(base, ["embed.weight"], 2)
    branches(repo, save(base), save(ours), save(theirs))
    repo.write("policies/merge.toml", b'version = 1\ndefault = { strategy = "theirs" }\n')
    repo.git("config", "theta.mergePolicy", "policies/merge.toml")
    assert merge(repo).returncode == 0
    assert np.array_equal(load(repo.read(MODEL))["embed.weight"], theirs["embed.weight"])


def test_check_validates_and_shows_each_parameters_rule(repo: GitRepo) -> None:
    base = make_model()
    branches(repo, save(base), save(tuned(base, ["embed.weight"], 1)), save(tuned(base, ["head.bias"], 2)))
    write_policy(repo, (SPEC / "valid" / "issue-example.toml").read_text())
    text = repo.theta("merge-policy", "check", MODEL).stdout
    assert text.startswith(".theta/merge-policy.toml: valid; 2 rule(s), default fail")
    assert "rules[0]: *.norm.*, *.ln_* in *.safetensors -> average (weight=0.5)" in text
    line = next(line for line in text.splitlines() if "layers.0.norm.weight" in line)
    assert "rules[0]: average (weight=0.5)" in line
    assert "rules[1]: ties (density=0.2, scale=1.0, weights=[1.0, 1.0])" in text
    report = json.loads(repo.theta("merge-policy", "check", MODEL, "--json").stdout)
    assert report["valid"] is True and report["default"]["strategy"] == "fail"
    entries = {e["parameter"]: e for e in report["files"][MODEL]}
    assert entries["embed.weight"] == {
        "parameter": "embed.weight",
        "rule": "rules[1]",
        "strategy": "ties",
        "options": {"density": 0.2, "scale": 1.0, "weights": [1.0, 1.0]},
    }
    repo.write(POLICY, b'version = 1\n[[rules]]\nparams = ["*"]\nstrategy = "tiez"\n')
    bad = repo.theta("merge-policy", "check", "--json", check=False)
    assert bad.returncode == 1 and json.loads(bad.stdout)["valid"] is False
    assert "unknown strategy 'tiez'" in json.loads(bad.stdout)["error"]
    plain = repo.theta("merge-policy", "check", check=False)
    assert plain.returncode == 1 and plain.stderr.count("\n") == 1 and "rules[0].strategy" in plain.stderr


def test_check_without_a_policy_file_names_the_default(repo: GitRepo) -> None:
    repo.write("untracked.safetensors", save(make_model()))
    text = repo.theta("merge-policy", "check", "untracked.safetensors").stdout
    assert text.startswith("no merge policy file: valid; 0 rule(s), default fail")
    assert "embed.weight" in text
