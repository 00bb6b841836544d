"""Lazy clones: metadata files in place and nothing fetched, then exactly what is asked for."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from diff_samples import MODEL, arrays
from diff_samples import version_one as make_v1
from diff_samples import version_two as make_v2
from safetensors.numpy import save

import theta
from theta.testing import GitRepo, clone, git_theta_command


def stored_objects(repo: GitRepo) -> set[str]:
    root = repo.path / ".git" / "lfs" / "objects"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def chain_oids(metadata: dict, names: list[str]) -> set[str]:
    return {
        record["oid"]
        for name in names
        for step in metadata["parameters"][name]["steps"]
        for record in step["objects"].values()
    }


def all_oids(metadata: dict) -> set[str]:
    return chain_oids(metadata, list(metadata["parameters"])) | {metadata["skeleton"]["oid"]}


@pytest.fixture
def pushed(repo: GitRepo) -> GitRepo:
    """v1, then v2 in which fc1.weight is an update on v1's (a chain of two steps); both pushed."""
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, make_v1())
    repo.commit_all("v1")
    state = arrays(make_v1())
    state["fc1.weight"] = state["fc1.weight"].copy()
    state["fc1.weight"][0, :2] += np.float32(1.0)
    repo.write(MODEL, save(state))
    repo.commit_all("v2")
    repo.git("push", "-q", "origin", "main")
    return repo


@pytest.fixture
def in_process(git_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith(("GIT_", "THETA_"))]:
        monkeypatch.delenv(key)
    for key, value in git_env.items():
        monkeypatch.setenv(key, value)


def test_skip_smudge_clone_leaves_metadata_and_fetches_nothing(pushed: GitRepo, remote: Path, tmp_path: Path) -> None:
    env = {**pushed.env, "GIT_LFS_SKIP_SMUDGE": "1"}
    lazy = clone(remote, tmp_path / "lazy", env)
    assert json.loads(lazy.read(MODEL))["theta"] == "theta.metadata/1"
    assert stored_objects(lazy) == set()
    assert lazy.status() == ""
    lazy = GitRepo(lazy.path, pushed.env)
    out = lazy.theta("checkout").stdout
    assert f"checked out {MODEL}" in out
    assert lazy.read(MODEL) == pushed.read(MODEL)
    assert lazy.status() == ""
    assert stored_objects(lazy) == all_oids(json.loads(lazy.blob(f"HEAD:{MODEL}")))


def test_install_skip_smudge_then_fetch_and_checkout(pushed: GitRepo, remote: Path, tmp_path: Path) -> None:
    lazy = clone(remote, tmp_path / "lazy", pushed.env, "--no-checkout")
    lazy.theta("install", "--local", "--skip-smudge")
    assert lazy.git("config", "--local", "filter.theta.process").stdout.strip().endswith("--skip-smudge")
    lazy.git("reset", "-q", "--hard")
    assert json.loads(lazy.read(MODEL))["format"] == "safetensors"
    assert stored_objects(lazy) == set()
    metadata = json.loads(lazy.blob(f"HEAD:{MODEL}"))
    lazy.theta("fetch", "--params", "fc1.*")
    assert stored_objects(lazy) == chain_oids(metadata, ["fc1.bias", "fc1.weight"])
    lazy.theta("checkout", MODEL)
    assert lazy.read(MODEL) == pushed.read(MODEL)


def test_fetch_a_revision_in_a_no_checkout_clone(pushed: GitRepo, remote: Path, tmp_path: Path) -> None:
    bare = clone(remote, tmp_path / "nocheckout", pushed.env, "--no-checkout")
    assert not (bare.path / ".gitattributes").exists()
    result = bare.theta("fetch", "HEAD~1")
    assert "fetched" in result.stderr
    assert stored_objects(bare) == all_oids(json.loads(bare.blob(f"HEAD~1:{MODEL}")))
    wrong = bare.theta("fetch", "HEAD", "nosuch.safetensors", check=False)
    assert wrong.returncode == 1
    assert wrong.stderr == (
        "theta: error: nosuch.safetensors: no file Theta tracks there at HEAD (`git theta ls-files` lists them)\n"
    )
    (bare.path / "notes").mkdir()
    here = subprocess.run(  # a path from a subdirectory, as git names it there
        [git_theta_command(), "fetch", "HEAD", f"../{MODEL}"], cwd=bare.path / "notes", env=bare.env,
        capture_output=True, text=True,
    )  # fmt: skip
    assert here.returncode == 0 and "for 1 file(s) at HEAD" in here.stderr, here.stderr


def test_fetch_names_what_did_not_arrive(pushed: GitRepo, remote: Path, tmp_path: Path) -> None:
    state = arrays(make_v2())
    pushed.write(MODEL, save(state))
    pushed.commit_all("v3")
    objects = remote / "lfs" / "objects"
    metadata = json.loads(pushed.blob(f"HEAD:{MODEL}"))
    # push the commit but take one object away from the remote: it cannot arrive
    pushed.git("push", "-q", "origin", "main")
    lost = metadata["parameters"]["head.weight"]["steps"][0]["objects"]["value"]["oid"]
    (objects / lost[:2] / lost[2:4] / lost).unlink()
    bare = clone(remote, tmp_path / "nocheckout", pushed.env, "--no-checkout")
    result = bare.theta("fetch", "HEAD", check=False)
    assert result.returncode == 1
    assert f"{MODEL}: parameter 'head.weight': object {lost} did not arrive" in result.stderr
    assert "could not be fetched completely" in result.stderr


def test_partial_load_fetches_exactly_the_named_chains(
    pushed: GitRepo, remote: Path, tmp_path: Path, in_process: None
) -> None:
    bare = clone(remote, tmp_path / "nocheckout", pushed.env, "--no-checkout")
    metadata = json.loads(bare.blob(f"HEAD:{MODEL}"))
    assert len(metadata["parameters"]["fc1.weight"]["steps"]) == 2  # a real chain: dense, then an update
    info = theta.info(MODEL, repo=bare.path)
    assert info.parameters["fc1.weight"].chain[0] == "dense"
    assert stored_objects(bare) == set()  # info fetches no object
    loaded = theta.load(MODEL, params=["fc1.weight"], repo=bare.path)
    assert stored_objects(bare) == chain_oids(metadata, ["fc1.weight"])
    chain = chain_oids(metadata, ["fc1.weight"])
    assert len(chain) >= 2  # the dense root and the update's arrays
    expected = arrays(pushed.read(MODEL))["fc1.weight"]
    assert np.array_equal(loaded["fc1.weight"], expected)
    theta.load(MODEL, rev="HEAD~1", params=["fc1.weight"], repo=bare.path)  # v1's is the chain's root
    assert stored_objects(bare) == chain
    theta.load(MODEL, params=["embed.*", "fc2.bias"], repo=bare.path)
    assert stored_objects(bare) == chain_oids(metadata, ["fc1.weight", "embed.weight", "fc2.bias"])


def test_diff_in_a_lazy_clone_fetches_only_the_changed_chains(pushed: GitRepo, remote: Path, tmp_path: Path) -> None:
    bare = clone(remote, tmp_path / "nocheckout", pushed.env, "--no-checkout")
    out = json.loads(bare.theta("diff", "--json", "HEAD~1", "HEAD").stdout)
    assert [p["name"] for p in out["parameters"] if p["status"] == "changed"] == ["fc1.weight"]
    metadata = json.loads(bare.blob(f"HEAD:{MODEL}"))
    assert stored_objects(bare) == chain_oids(metadata, ["fc1.weight"])
