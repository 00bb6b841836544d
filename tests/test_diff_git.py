"""git's own commands on tracked checkpoints: `git diff`, `git show`, `git log -p` read metadata,
print the per-parameter text, never a `fatal:` line, and never rebuild a checkpoint."""

from __future__ import annotations

import re

import numpy as np
import pytest
from diff_samples import MODEL, arrays
from diff_samples import version_one as make_v1
from diff_samples import version_two as make_v2
from safetensors.numpy import save

from theta.testing import GitRepo

SMUDGE = re.compile(r"^theta: trace: smudge (.+) took ", re.M)
LEFT = re.compile(r"^theta: trace: smudge (.+) left as metadata: ", re.M)


def traced(repo: GitRepo) -> GitRepo:
    return GitRepo(repo.path, {**repo.env, "THETA_TRACE": "1"})


@pytest.fixture
def history(repo: GitRepo) -> GitRepo:
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, make_v1())
    repo.commit_all("v1")
    repo.write(MODEL, make_v2())
    repo.commit_all("v2")
    return repo


def assert_no_rebuild(result_stderr: str) -> int:
    """Every smudge git asked for handed the metadata back; returns how many there were."""
    smudges, left = SMUDGE.findall(result_stderr), LEFT.findall(result_stderr)
    assert smudges == left, f"a checkpoint was rebuilt:\n{result_stderr}"
    return len(smudges)


@pytest.mark.parametrize(
    "command",
    [
        ("diff", "HEAD~1", "HEAD"),
        ("show", "HEAD"),
        ("log", "-p"),
        ("log", "-p", "--ext-diff"),
        ("show", "--ext-diff", "HEAD"),
        ("-c", "color.ui=never", "--no-pager", "show", "HEAD"),
        ("lp",),  # an alias for log -p
        ("stash", "show", "-p", "--ext-diff"),
    ],
)
def test_no_fatal_and_no_rebuilt_checkpoint(history: GitRepo, command: tuple[str, ...]) -> None:
    history.git("config", "alias.lp", "log -p")
    if command[0] == "stash":
        history.write(MODEL, make_v1())
        history.git("stash", "-q")
    result = traced(history).git(*command)
    assert "fatal:" not in result.stdout + result.stderr
    assert "layers" not in result.stderr and "Traceback" not in result.stderr
    assert_no_rebuild(result.stderr)
    assert "fc1.bias" in result.stdout and "head.weight" in result.stdout
    assert "norm.bias" in result.stdout


def test_ext_diff_lists_changes_not_unchanged_parameters(history: GitRepo) -> None:
    out = history.git("log", "-p", "--ext-diff", "-1").stdout
    assert "+ fc1.bias" in out and "- norm.bias" in out and "+ head.weight" in out
    assert "fc2.bias" not in out and "norm.weight" not in out  # unchanged
    assert "4 changed (1 reshaped), 1 added, 1 removed, 2 unchanged" in out


def test_textconv_gives_git_log_a_line_per_parameter(history: GitRepo) -> None:
    out = history.git("show", "HEAD").stdout
    changed = [line for line in out.splitlines() if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
    names = {line[1:].split()[0] for line in changed}
    assert {"fc1.bias", "fc1.weight", "embed.weight", "fc2.weight", "head.weight", "norm.bias"} <= names
    assert all("unchanged" not in line for line in changed)
    added = next(line for line in changed if line.startswith("+head.weight"))
    assert "float32 [4, 16]" in added and ("dense" in added or "sparse" in added)
    # a line depends on its parameter only: the unchanged ones are context, not changes
    assert not any(line[1:].startswith("fc2.bias") for line in changed)


def test_git_diff_of_the_working_tree(history: GitRepo) -> None:
    state = arrays(make_v2())
    state["fc2.bias"] = state["fc2.bias"] + np.float32(1.0)
    history.write(MODEL, save(state))
    result = traced(history).git("diff")
    assert "fatal:" not in result.stderr
    assert_no_rebuild(result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0] == f"diff --theta a/{MODEL} b/{MODEL}"
    assert [line.split()[1] for line in lines if line.startswith(("+", "-"))] == ["fc2.bias", "fc2.bias"]
    assert lines[-1].strip() == "1 changed, 0 added, 0 removed, 6 unchanged; not stored yet"
    plain = history.git("diff", "--no-ext-diff").stdout  # the textconv reads the working tree's checkpoint
    assert "-fc2.bias" in plain and "+fc2.bias" in plain and "(not stored)" in plain


def test_a_checkout_still_writes_the_checkpoint(history: GitRepo) -> None:
    result = traced(history).git("checkout", "-q", "HEAD~1")
    assert not LEFT.findall(result.stderr) and SMUDGE.findall(result.stderr)
    assert history.read(MODEL) == make_v1()


def test_stat_stays_meaningful(history: GitRepo) -> None:
    result = traced(history).git("diff", "--stat", "HEAD~1", "HEAD")
    assert MODEL in result.stdout and "1 file changed" in result.stdout
    assert not SMUDGE.findall(result.stderr)


def test_a_name_cannot_forge_lines(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    hostile = "evil\n+ forged.weight float32 [1]"
    repo.write(MODEL, save({"a": np.zeros(3, np.float32), hostile: np.ones(2, np.float32)}))
    repo.commit_all("v1")
    repo.write(MODEL, save({"a": np.zeros(3, np.float32), hostile: np.full(2, 2, np.float32)}))
    for out in (repo.git("diff").stdout, repo.theta("diff").stdout):
        assert not any(line.startswith("+ forged") for line in out.splitlines())
        assert '"evil\\n+ forged.weight float32 [1]"' in out
    repo.commit_all("v2")
    shown = repo.git("show", "HEAD").stdout
    assert not any(line.startswith(("+ forged", "++ forged")) for line in shown.splitlines())


def test_rename_is_shown_with_both_paths(history: GitRepo) -> None:
    history.git("mv", MODEL, "renamed.safetensors")
    out = history.git("diff", "--cached", "-M", "HEAD").stdout
    assert "fatal" not in out
    if out:  # git detected the rename: the driver got both paths
        assert out.startswith(f"diff --theta a/{MODEL} b/renamed.safetensors")
    history.git("commit", "-q", "-m", "rename")
    log = history.theta("log").stdout.splitlines()
    assert log[0].endswith("rename")
    assert "stored 0 B" in log[1] or "stored 0 B" in log[2]  # a git mv costs nothing
