"""One install: `make dist`'s wheels install offline into a fresh environment, and everything works there."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from sample_models import checkpoint_bytes, make_model

from theta.testing import GitRepo, setup_git_home

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import dist  # noqa: E402


def test_theta_vcs_depends_on_every_update_merge_and_diff_plugin() -> None:
    project = tomllib.loads((ROOT / "packaging" / "theta-vcs" / "pyproject.toml").read_text())["project"]
    required = {r.split(">")[0] for r in project["dependencies"]}
    for kind in ("updates", "merges", "diffs"):
        for plugin in (ROOT / "plugins" / kind).glob("*/pyproject.toml"):
            name = tomllib.loads(plugin.read_text())["project"]["name"]
            assert name in required, f"theta-vcs does not install {name}"
    assert {"theta-kernel", "theta-format-safetensors"} <= required
    extras = project["optional-dependencies"]
    assert set(extras) == {"torch", "tensorflow", "onnx", "all"}
    assert sorted(extras["all"]) == sorted(extras["torch"] + extras["tensorflow"] + extras["onnx"])
    assert not [r for extra in extras.values() for r in extra if re.match(r"(torch|tensorflow|onnx)\b", r)], (
        "an extra pulls in a framework"
    )


def test_every_distribution_is_built() -> None:
    built = {p.name for p in dist.distributions()}
    for pyproject in ROOT.glob("plugins/*/*/pyproject.toml"):
        assert pyproject.parent.name in built
    assert {"kernel", "theta-vcs"} <= built


@pytest.mark.slow
def test_wheels_install_offline_into_a_fresh_environment(tmp_path: Path) -> None:
    wheels = tmp_path / "dist"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "dist.py"), str(wheels)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    bin_dir = tmp_path / "venv" / "bin"
    proc = subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", "--no-index", "--find-links", str(wheels), "theta-vcs"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "venv" / "share" / "man" / "man1" / "git-theta.1").is_file()

    env = setup_git_home(tmp_path / "home", bin_dir)
    repo = GitRepo(tmp_path / "work", env)
    repo.path.mkdir()
    repo.git("init", "-q", "-b", "main")
    plugins = json.loads(repo.run(str(bin_dir / "git-theta"), "plugins", "--json").stdout)
    registered = {kind: name for row in plugins for kind, names in row["registers"].items() for name in names}
    assert not [row for row in plugins if row["error"]], plugins
    names = {name for row in plugins for names in row["registers"].values() for name in names}
    assert {"safetensors", "dense", "sparse", "low-rank", "ia3"} <= names, registered
    distributions = {row["distribution"] for row in plugins}
    assert {"theta-merge-basic", "theta-merge-ties", "theta-diff-text", "theta-diff-plot"} <= distributions

    manual = repo.run("git", "theta", "--help", input=None)
    assert "GIT-THETA(1)" in re.sub(r".\x08", "", manual.stdout), "git finds the manual the wheel installed"

    repo.run(str(bin_dir / "git-theta"), "track", "*.safetensors")
    data = checkpoint_bytes(make_model())
    repo.write("model.safetensors", data)
    repo.commit_all("v1")
    assert json.loads(repo.blob("HEAD:model.safetensors"))["format"] == "safetensors"
    (repo.path / "model.safetensors").unlink()
    repo.git("checkout", "--", "model.safetensors")
    assert repo.read("model.safetensors") == data
