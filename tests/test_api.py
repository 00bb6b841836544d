"""The Python API: theta.load, theta.info and theta.diff on any version, without a checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from diff_samples import CHANGED, MODEL, arrays, expected_figures
from diff_samples import version_one as make_v1
from diff_samples import version_two as make_v2
from safetensors.numpy import save

import theta
from theta.testing import GitRepo


@pytest.fixture
def in_process(git_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's git sees the test's HOME, as the subprocesses do."""
    for key in [k for k in os.environ if k.startswith(("GIT_", "THETA_"))]:
        monkeypatch.delenv(key)
    for key, value in git_env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def history(repo: GitRepo, in_process: None) -> GitRepo:
    repo.theta("track", "*.safetensors")
    repo.write(MODEL, make_v1())
    repo.commit_all("v1")
    repo.write(MODEL, make_v2())
    repo.commit_all("v2")
    return repo


def test_import_theta_is_cheap() -> None:
    code = "import sys, theta; print(any(m in sys.modules for m in ('theta.api', 'theta.session', 'numpy')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_load_every_parameter_at_a_revision(history: GitRepo) -> None:
    for rev, data in (("HEAD~1", make_v1()), ("HEAD", make_v2()), ("main", make_v2())):
        loaded = theta.load(MODEL, rev=rev, repo=history.path)
        expected = arrays(data)
        assert list(loaded) == list(json.loads(history.blob(f"{rev}:{MODEL}"))["parameters"])  # checkpoint order
        assert set(loaded) == set(expected)
        for name, array in expected.items():
            assert loaded[name].dtype == array.dtype and np.array_equal(loaded[name], array), (rev, name)
    loaded["fc1.bias"][0] = 1.0  # writable


def test_load_selected_parameters(history: GitRepo) -> None:
    loaded = theta.load(MODEL, rev="HEAD~1", params=["fc1.*", "norm.bias"], repo=history.path)
    assert list(loaded) == ["fc1.bias", "fc1.weight", "norm.bias"]
    sub = history.path / "sub"
    sub.mkdir()
    assert list(theta.load(MODEL, params="embed.*", repo=sub)) == ["embed.weight"]  # a directory inside the repo


def test_load_from_the_index(history: GitRepo) -> None:
    state = arrays(make_v2())
    state["fc2.bias"] = state["fc2.bias"] * 2
    history.write(MODEL, save(state))
    history.git("add", MODEL)
    staged = theta.load(MODEL, rev=":", params=["fc2.bias"], repo=history.path)
    assert np.array_equal(staged["fc2.bias"], state["fc2.bias"])


def test_bfloat16_comes_back_as_ml_dtypes(repo: GitRepo, in_process: None) -> None:
    import torch
    from safetensors.torch import save as torch_save

    repo.theta("track", "*.safetensors")
    weight = torch.linspace(-2, 2, 12, dtype=torch.bfloat16).reshape(3, 4)
    repo.write(MODEL, torch_save({"w": weight}))
    repo.commit_all("bf16")
    loaded = theta.load(MODEL, repo=repo.path)["w"]
    assert loaded.dtype == ml_dtypes.bfloat16 and loaded.shape == (3, 4)
    assert np.array_equal(loaded.astype(np.float32), weight.float().numpy())


def test_info_reads_only_metadata(history: GitRepo) -> None:
    info = theta.info(MODEL, rev="HEAD", repo=history.path)
    stored = json.loads(history.blob(f"HEAD:{MODEL}"))
    assert (info.format, info.rev, info.path) == ("safetensors", "HEAD", MODEL)
    assert list(info.parameters) == list(stored["parameters"])
    head = info.parameters["head.weight"]
    assert (head.dtype, head.shape, head.update, head.chain) == ("float32", (4, 16), "dense", ("dense",))
    assert head.stored_bytes == 4 * 16 * 4
    fc1 = info.parameters["fc1.weight"]
    steps = stored["parameters"]["fc1.weight"]["steps"]
    assert fc1.chain == tuple(s["update"] for s in steps)
    assert fc1.chain_bytes == sum(o["size"] for s in steps for o in s["objects"].values())


def test_diff_gives_the_json_figures(history: GitRepo) -> None:
    diff = theta.diff(MODEL, "HEAD~1", "HEAD", repo=history.path)
    cli = json.loads(history.theta("diff", "--json", "HEAD~1", "HEAD").stdout)
    assert (diff.path, diff.old, diff.new) == (MODEL, "HEAD~1", "HEAD")
    for param, row in zip(diff.parameters, cli["parameters"], strict=True):
        assert param.name == row["name"] and param.status == row["status"]
        assert param.l2 == row["l2"] and param.cosine == row["cosine"] and param.stored_bytes == row["stored_bytes"]
    old, new = arrays(make_v1()), arrays(make_v2())
    by_name = {p.name: p for p in diff.parameters}
    for name in CHANGED:
        assert by_name[name].relative == pytest.approx(expected_figures(old[name], new[name])["relative"], rel=1e-12)
    assert diff.summary.added == 1 and diff.summary.removed == 1
    selected = theta.diff(MODEL, "HEAD~1", "HEAD", params=["fc1.*"], repo=history.path)
    assert [p.name for p in selected.parameters] == ["fc1.bias", "fc1.weight"]


def test_diff_against_the_working_tree(history: GitRepo) -> None:
    state = arrays(make_v2())
    state["norm.weight"] = state["norm.weight"] + np.float32(0.5)
    history.write(MODEL, save(state))
    diff = theta.diff(MODEL, "HEAD", None, repo=history.path)
    assert diff.new is None and diff.summary.stored_bytes is None
    assert [p.name for p in diff.parameters if p.status == "changed"] == ["norm.weight"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: theta.load(MODEL, rev="nosuchrev", repo=r), "unknown revision 'nosuchrev'"),
        (lambda r: theta.load("absent.safetensors", repo=r), "absent.safetensors does not exist at HEAD"),
        (lambda r: theta.load(".gitattributes", repo=r), ".gitattributes at HEAD is not a Theta metadata file"),
        (lambda r: theta.load(MODEL, params=["fc3.*"], repo=r), "no parameter matches 'fc3.*'"),
        (lambda r: theta.info(MODEL, repo=Path(r) / "nowhere"), "is not a directory"),
        (lambda r: theta.diff("absent.safetensors", "HEAD~1", "HEAD", repo=r), "exists neither at HEAD~1 nor at HEAD"),
    ],
)
def test_errors_are_theta_errors_with_the_cli_message(history: GitRepo, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(theta.ThetaError, match=message.replace(".", r"\.").replace("*", r"\*")):
        call(history.path)


def test_outside_a_repository(tmp_path: Path, in_process: None) -> None:
    with pytest.raises(theta.ThetaError, match="not inside a git repository"):
        theta.info(MODEL, repo=tmp_path)


def test_show_exports_a_safetensors_file(history: GitRepo, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    target = tmp_path / "out" / "fc1.safetensors"
    history.theta("show", f"HEAD~1:{MODEL}", "--params", "fc1.*", "-o", str(target))
    exported = load_file(str(target))
    original = arrays(make_v1())
    assert list(exported) == ["fc1.bias", "fc1.weight"]
    assert all(np.array_equal(exported[n], original[n]) for n in exported)
    result = history.theta("show", "HEAD", "-o", str(target), check=False)
    assert result.returncode == 1 and "expected REV:PATH" in result.stderr
