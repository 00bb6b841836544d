"""The everyday workflow with real git and git-lfs: track, commit, switch, rewrite history."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sample_models import checkpoint_bytes, edited, make_model

from theta.testing import GitRepo, clone, git_theta_command

MODEL = "model.safetensors"


def objects(repo: GitRepo) -> set[str]:
    root = repo.path / ".git" / "lfs" / "objects"
    return {p.name for p in root.rglob("*") if p.is_file()}


def commit_model(repo: GitRepo, data: bytes, message: str) -> str:
    repo.write(MODEL, data)
    return repo.commit_all(message)


def test_track_writes_attributes_and_hook(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    attributes = repo.read(".gitattributes").decode()
    assert "*.safetensors filter=theta diff=theta merge=theta" in attributes
    assert ".gitattributes" in repo.git("diff", "--cached", "--name-only").stdout
    assert (repo.path / ".git" / "hooks" / "pre-push").exists()
    repo.write(MODEL, checkpoint_bytes(make_model()))
    repo.commit_all("v1")
    assert repo.theta("ls-files").stdout.split() == [MODEL]


@pytest.mark.parametrize(
    ("pattern", "said"),
    [
        ("", "the PATTERN is empty"),
        ("x.pt\n* -filter", "cannot hold a line break"),
        ("#x.pt", "is a comment in .gitattributes; track '\\#x.pt'"),
        ("!x.pt", "is a negative pattern, which git ignores in .gitattributes; track '\\!x.pt'"),
    ],
)
def test_a_pattern_gitattributes_would_misread_is_refused_in_one_line(repo: GitRepo, pattern: str, said: str) -> None:
    before = (repo.path / ".gitattributes").read_bytes() if (repo.path / ".gitattributes").exists() else None
    proc = repo.theta("track", pattern, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("theta: error: ") and said in proc.stderr
    after = (repo.path / ".gitattributes").read_bytes() if (repo.path / ".gitattributes").exists() else None
    assert after == before


def test_a_pattern_escaped_as_git_asks_tracks_its_files(repo: GitRepo) -> None:
    repo.theta("track", "\\#draft.safetensors")
    repo.write("#draft.safetensors", checkpoint_bytes(make_model()))
    repo.commit_all("v1")
    assert repo.theta("ls-files").stdout.split() == ["#draft.safetensors"]


def test_commit_stores_metadata_and_one_object_per_tensor(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    commit_model(repo, v1, "v1")
    stored = json.loads(repo.blob(f"HEAD:{MODEL}"))
    assert stored["format"] == "safetensors"
    assert sorted(stored["parameters"]) == sorted(make_model())
    assert len(objects(repo)) == len(make_model()) + 1 - 3  # 4 zero biases share one object; + skeleton
    assert repo.status() == ""


def test_second_version_stores_only_the_changed_tensor(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    commit_model(repo, v1, "v1")
    before = objects(repo)
    commit_model(repo, edited(v1, "layers.2.attn.weight"), "v2")
    added = objects(repo) - before
    stored = json.loads(repo.blob(f"HEAD:{MODEL}"))
    last_step = stored["parameters"]["layers.2.attn.weight"]["steps"][-1]
    assert added == {record["oid"] for record in last_step["objects"].values()}
    assert sum(record["size"] for record in last_step["objects"].values()) <= 64 * 64 * 4


def test_switching_commits_and_branches_is_exact(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    first = commit_model(repo, v1, "v1")
    v2 = edited(v1, "embed.weight")
    commit_model(repo, v2, "v2")
    repo.git("checkout", "-q", first)
    assert repo.read(MODEL) == v1
    assert repo.status() == ""
    repo.git("checkout", "-q", "-b", "other")
    v3 = edited(v1, "layers.0.norm.bias", 0.5)
    commit_model(repo, v3, "v3")
    repo.git("checkout", "-q", "main")
    assert repo.read(MODEL) == v2
    repo.git("checkout", "-q", "other")
    assert repo.read(MODEL) == v3
    assert repo.status() == ""


def test_clean_is_idempotent(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    commit_model(repo, v1, "v1")
    stored = repo.blob(f"HEAD:{MODEL}")
    rehashed = repo.git("hash-object", f"--path={MODEL}", "--stdin", input=stored).stdout.strip()
    assert rehashed == repo.git("rev-parse", f"HEAD:{MODEL}").stdout.strip()


def test_stash_and_reset_hard(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    commit_model(repo, v1, "v1")
    v2 = edited(v1, "layers.1.mlp.weight")
    repo.write(MODEL, v2)
    repo.git("stash")
    assert repo.read(MODEL) == v1
    repo.git("stash", "pop")
    assert repo.read(MODEL) == v2
    repo.git("reset", "-q", "--hard")
    assert repo.read(MODEL) == v1
    assert repo.status() == ""


def test_rebase_and_cherry_pick(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    repo.write("README", b"base\n")
    commit_model(repo, v1, "v1")
    repo.git("checkout", "-q", "-b", "feature")
    v2 = edited(v1, "layers.3.attn.weight")
    commit_model(repo, v2, "v2 on feature")
    repo.git("checkout", "-q", "main")
    repo.write("README", b"main moved on\n")
    repo.commit_all("docs")
    repo.git("checkout", "-q", "feature")
    repo.git("rebase", "-q", "main")
    assert repo.read(MODEL) == v2
    assert repo.read("README") == b"main moved on\n"
    v3 = edited(v2, "embed.weight", 2.0)
    pick = commit_model(repo, v3, "v3 on feature")
    repo.git("checkout", "-q", "main")
    repo.git("cherry-pick", pick)
    assert repo.read(MODEL) == checkpoint_bytes_with(v1, {"embed.weight": v3})
    assert repo.status() == ""


def checkpoint_bytes_with(base: bytes, sources: dict[str, bytes]) -> bytes:
    from safetensors.numpy import load

    model = dict(load(base))
    for name, data in sources.items():
        model[name] = load(data)[name]
    return checkpoint_bytes(model)


def test_merge_of_disjoint_changes_is_automatic(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    commit_model(repo, v1, "v1")
    repo.git("checkout", "-q", "-b", "a")
    commit_model(repo, edited(v1, "layers.0.attn.weight"), "a")
    repo.git("checkout", "-q", "main")
    commit_model(repo, edited(v1, "layers.3.attn.weight"), "b")
    repo.git("merge", "-q", "--no-edit", "a")
    from safetensors.numpy import load

    merged = load(repo.read(MODEL))
    assert merged["layers.0.attn.weight"].reshape(-1)[0] == load(v1)["layers.0.attn.weight"].reshape(-1)[0] + 1
    assert merged["layers.3.attn.weight"].reshape(-1)[0] == load(v1)["layers.3.attn.weight"].reshape(-1)[0] + 1
    assert repo.status() == ""


def test_merge_of_the_same_parameter_conflicts(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    commit_model(repo, v1, "v1")
    repo.git("checkout", "-q", "-b", "a")
    commit_model(repo, edited(v1, "embed.weight", 1.0), "a")
    repo.git("checkout", "-q", "main")
    commit_model(repo, edited(v1, "embed.weight", 2.0), "b")
    result = repo.git("merge", "--no-edit", "a", check=False)
    assert result.returncode != 0
    assert "'embed.weight'" in result.stderr
    assert "CONFLICT" in result.stdout


def test_diff_names_the_changed_parameter(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    commit_model(repo, v1, "v1")
    repo.write(MODEL, edited(v1, "layers.1.attn.weight"))
    diff = repo.git("diff").stdout
    changed = [
        line for line in diff.splitlines() if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    assert len(changed) == 2
    assert all("layers.1.attn.weight" in line for line in changed)


def test_metadata_names_no_commit(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    first = commit_model(repo, v1, "v1")
    commit_model(repo, edited(v1, "embed.weight"), "v2")
    text = repo.blob(f"HEAD:{MODEL}").decode()
    assert first not in text and first[:12] not in text


def test_install_keeps_existing_hooks(repo: GitRepo, remote: Path, v1: bytes) -> None:
    repo.git("lfs", "install", "--local")
    hooks = repo.path / ".git" / "hooks"
    lfs_pre_push = (hooks / "pre-push").read_text()
    user_hook = hooks / "post-commit"
    user_hook.write_text(f"#!/bin/sh\necho ran >> {repo.path / 'user-hook-ran'}\n")
    user_hook.chmod(0o755)
    repo.theta("install", "--local")
    assert (hooks / "pre-push.theta-chained").read_text() == lfs_pre_push
    assert "theta: managed hook" in (hooks / "pre-push").read_text()
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, v1)
    repo.commit_all("v1")
    assert (repo.path / "user-hook-ran").read_text() == "ran\n"
    result = repo.git("push", "origin", "main")
    assert "theta: pushing" in result.stderr
    repo.theta("install", "--local")  # twice is harmless
    assert (hooks / "post-commit.theta-chained").exists()


def test_shallow_clone_checks_out(repo: GitRepo, remote: Path, tmp_path: Path, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    commit_model(repo, v1, "v1")
    v2 = edited(v1, "embed.weight")
    commit_model(repo, v2, "v2")
    repo.git("push", "-q", "origin", "main")
    copy = clone(remote, tmp_path / "shallow", repo.env, "--depth", "1")
    assert copy.read(MODEL) == v2
    assert copy.status() == ""


def test_plugins_command_lists_distributions(repo: GitRepo) -> None:
    listed = {row["name"]: row for row in json.loads(repo.theta("plugins", "--json").stdout)}
    assert listed["safetensors"]["distribution"] == "theta-format-safetensors"
    assert listed["safetensors"]["registers"] == {"formats": ["safetensors"]}
    assert listed["dense"]["registers"] == {"update_types": ["dense"]}
    assert all(row["error"] is None for row in listed.values())


def test_ls_files_long_shows_what_each_commit_stored(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    commit_model(repo, v1, "first version")
    commit_model(repo, edited(v1, "embed.weight"), "second version")
    lines = repo.theta("ls-files", "--long").stdout.splitlines()
    assert lines[0] == MODEL
    first, second = lines[1], lines[2]
    assert "first version" in first and "KiB" in first
    assert "second version" in second


def test_squash_stores_dense_versions_without_rewriting_history(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    commit_model(repo, v1, "v1")
    v2 = edited(v1, "layers.0.attn.weight")
    commit_model(repo, v2, "v2")
    history = repo.git("rev-list", "HEAD").stdout
    repo.theta("squash", MODEL)
    (repo.path / MODEL).touch()
    repo.git("add", "--renormalize", MODEL)
    repo.git("commit", "-q", "--allow-empty", "-m", "squash")
    stored = json.loads(repo.blob(f"HEAD:{MODEL}"))
    assert all(len(p["steps"]) == 1 and p["steps"][0]["update"] == "dense" for p in stored["parameters"].values())
    assert repo.git("rev-list", "HEAD~1").stdout == history
    assert not (repo.path / ".git" / "theta" / "squash").exists()
    repo.git("checkout", "-q", "HEAD~1")
    assert repo.read(MODEL) == v2


def test_squash_names_files_as_git_does_wherever_it_is_run(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    repo.write(f"sub/{MODEL}", v1)
    repo.commit_all("v1")
    repo.write(f"sub/{MODEL}", edited(v1, "layers.0.attn.weight"))
    repo.commit_all("v2")
    subprocess.run([git_theta_command(), "squash", f"./{MODEL}"], cwd=repo.path / "sub", env=repo.env, check=True)
    (repo.path / "sub" / MODEL).touch()
    repo.git("add", "--renormalize", f"sub/{MODEL}")
    repo.git("commit", "-q", "--allow-empty", "-m", "squash")
    stored = json.loads(repo.blob(f"HEAD:sub/{MODEL}"))
    assert all(len(p["steps"]) == 1 for p in stored["parameters"].values())


@pytest.mark.parametrize(
    ("path", "said"), [("notes.txt", "not tracked with Theta"), ("gone.safetensors", "no such file")]
)
def test_squash_of_a_file_theta_does_not_store_is_refused(repo: GitRepo, path: str, said: str) -> None:
    repo.theta("track", "*.safetensors")
    repo.write("notes.txt", b"hello\n")
    proc = repo.theta("squash", path, check=False)
    assert proc.returncode == 1 and proc.stderr == f"theta: error: {path}: {said}" + (
        ": `git theta track` a pattern that matches it first\n" if "tracked" in said else "\n"
    )
    assert not (repo.path / ".git" / "theta" / "squash").exists()


def test_checkpoint_type_override(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.ckpt-data")
    repo.commit_all("track")
    repo.write("weights.ckpt-data", v1)
    repo.git("add", "weights.ckpt-data")  # detected from its first bytes: safetensors
    assert json.loads(repo.git("show", ":weights.ckpt-data").stdout)["format"] == "safetensors"
    repo.git("reset", "-q")
    env = dict(repo.env, GIT_THETA_CHECKPOINT_TYPE="onnx")
    forced = subprocess.run(["git", "add", "weights.ckpt-data"], cwd=repo.path, env=env, capture_output=True, text=True)
    assert forced.returncode != 0 and "weights.ckpt-data" in forced.stderr  # read as ONNX, as asked
    assert repo.git("diff", "--cached", "--name-only").stdout == ""


def test_checkout_of_a_file_left_as_metadata_works_from_a_subdirectory(repo: GitRepo, v1: bytes) -> None:
    repo.theta("track", "*.safetensors")
    repo.write(f"sub/{MODEL}", v1)
    repo.commit_all("v1")
    (repo.path / "sub" / MODEL).unlink()
    env = {**repo.env, "GIT_LFS_SKIP_SMUDGE": "1"}
    repo.git("-c", "filter.theta.process=git-theta filter-process --skip-smudge", "checkout", "--", f"sub/{MODEL}")
    assert repo.read(f"sub/{MODEL}").startswith(b"{")  # left as its metadata
    here = subprocess.run(
        [git_theta_command(), "checkout", MODEL], cwd=repo.path / "sub", env=env, capture_output=True, text=True
    )
    assert here.returncode == 0, here.stderr
    assert repo.read(f"sub/{MODEL}") == v1
    (repo.path / "sub" / MODEL).unlink()
    repo.git("-c", "filter.theta.process=git-theta filter-process --skip-smudge", "checkout", "--", f"sub/{MODEL}")
    (repo.path / "other").mkdir()
    above = subprocess.run(  # a path above the current directory, a directory: pathspecs as git reads them
        [git_theta_command(), "checkout", "../sub"], cwd=repo.path / "other", env=env, capture_output=True, text=True
    )
    assert above.returncode == 0, above.stderr
    assert repo.read(f"sub/{MODEL}") == v1
    gone = repo.theta("checkout", "nosuch.safetensors", check=False)
    assert gone.returncode == 1
    assert gone.stderr == (
        "theta: error: nosuch.safetensors: no file Theta tracks there in the index (`git theta ls-files` lists them)\n"
    )
