"""A third-party plugin, proven: examples/theta-format-npz, installed with pip into one fresh virtual
environment beside two broken plugins, used end to end (track, commit, change, diff, merge, push,
clone, exact checkouts), then its own tests run there."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sample_models import checkpoint_bytes, make_model

from theta.testing import GitRepo, fresh_environment, setup_git_home

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT / "examples" / "theta-format-npz"
BROKEN = ROOT / "examples" / "broken-plugins"
MODEL = "model.npz"


def savez(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "embed": rng.standard_normal((200, 32)).astype(np.float32),
        "layer.weight": rng.standard_normal((32, 32)).astype(np.float32),
        "layer.bias": np.zeros(32, np.float32),
        "steps": np.arange(5, dtype=np.int64),
    }


def changed(base: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    out = {k: v.copy() for k, v in base.items()}
    out[name].reshape(-1)[3] += 1
    return out


def loaded(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as archive:
        return {name: archive[name] for name in archive.files}


@pytest.mark.slow
def test_third_party_npz_plugin_end_to_end(tmp_path: Path) -> None:
    sources = [
        NPZ,
        BROKEN / "theta-broken-import",
        BROKEN / "theta-broken-duplicate",
        ROOT / "plugins" / "formats" / "safetensors",
        ROOT / "plugins" / "merges" / "basic",
        ROOT / "plugins" / "diffs" / "text",
    ]
    bin_dir = fresh_environment(tmp_path / "env", sources, requirements=["pytest"])
    env = setup_git_home(tmp_path / "home", bin_dir)
    theta = str(bin_dir / "git-theta")

    # the broken plugins are reported, and left out alone
    listing = subprocess.run([theta, "plugins"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines() if line.strip()}
    assert "theta-format-npz" in rows["npz"] and "formats: npz" in rows["npz"]
    assert "LEFT OUT" in rows["broken-import"] and "broken on purpose" in rows["broken-import"]
    assert "LEFT OUT" in rows["zz-broken-duplicate"] and "npz" in rows["zz-broken-duplicate"]
    assert "LEFT OUT" not in rows["safetensors"]
    assert "some plugins were left out" in listing.stderr

    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], env=env, check=True)
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], env=env, check=True)
    repo = GitRepo(work, env)
    repo.git("remote", "add", "origin", remote.as_uri())
    repo.run(theta, "track", "*.npz")
    repo.run(theta, "track", "*.safetensors")

    # track and commit; another format works beside it
    v1 = savez(arrays())
    other = checkpoint_bytes(make_model())
    repo.write(MODEL, v1)
    repo.write("other.safetensors", other)
    first = repo.commit_all("v1")
    assert b'"format": "npz"' in repo.blob(f"HEAD:{MODEL}")
    assert b'"format_plugin": "theta-format-npz"' in repo.blob(f"HEAD:{MODEL}")

    # change, diff
    v2 = savez(changed(arrays(), "embed"))
    repo.write(MODEL, v2)
    diff = repo.git("diff", MODEL).stdout
    assert "embed" in diff and "layer.weight" not in diff, diff
    second = repo.commit_all("v2: embed changed")

    # merge of disjoint changes
    repo.git("checkout", "-q", "-b", "side", first)
    side = changed(arrays(), "layer.bias")
    repo.write(MODEL, savez(side))
    repo.commit_all("side: bias changed")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-edit", "side")
    merged = loaded(repo.read(MODEL))
    expected = changed(changed(arrays(), "embed"), "layer.bias")
    assert sorted(merged) == sorted(expected)
    for name, value in expected.items():
        assert np.array_equal(merged[name], value), name
    assert repo.status() == ""
    merge_commit = repo.git("rev-parse", "HEAD").stdout.strip()
    merged_bytes = repo.read(MODEL)

    # exact checkouts here, then push, clone and exact checkouts there
    repo.git("checkout", "-q", first)
    assert repo.read(MODEL) == v1 and repo.read("other.safetensors") == other
    repo.git("checkout", "-q", "main")
    push = repo.git("push", "origin", "main", "side")
    assert "theta: pushing" in push.stderr
    copy = tmp_path / "copy"
    subprocess.run(["git", "clone", "-q", remote.as_uri(), str(copy)], env=env, check=True, capture_output=True)
    clone = GitRepo(copy, env)
    assert clone.read(MODEL) == merged_bytes and clone.status() == ""
    for commit, data in ((first, v1), (second, v2), (merge_commit, merged_bytes)):
        clone.git("checkout", "-q", commit)
        assert clone.read(MODEL) == data, commit
    clone.run(theta, "fsck", "--all")

    # the plugin's own tests pass in the same environment, broken plugins and all
    tests = shutil.copytree(NPZ / "tests", tmp_path / "npz-tests")
    result = subprocess.run(
        [str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
