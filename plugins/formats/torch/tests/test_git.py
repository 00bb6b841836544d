"""End to end through git: track, commit, change, commit, check out the first version."""

from __future__ import annotations

import torch

from theta.metadata import loads
from theta.testing import GitRepo

from .torch_samples import nested_training_state, saved


def test_checkout_gives_back_the_committed_file(repo: GitRepo) -> None:
    repo.theta("track", "*.pt")
    state = nested_training_state()
    first = saved(state)
    repo.write("ckpt/model.pt", first)
    first_commit = repo.commit_all("first checkpoint")
    state["model"]["weight"][0, :3] += 1.0
    state["optimizer"]["state"][0]["exp_avg"].mul_(0.5)
    state["epoch"] = 8
    second = saved(state)
    assert second != first
    repo.write("ckpt/model.pt", second)
    repo.commit_all("second checkpoint")
    assert repo.status() == ""
    stored = loads(repo.blob("HEAD:ckpt/model.pt"), "model.pt")  # git holds Theta's metadata, not the archive
    assert stored.format == "pytorch"
    assert "optimizer.state.0.exp_avg" in stored.parameters
    repo.git("checkout", "-q", first_commit)
    assert repo.read("ckpt/model.pt") == first
    assert repo.status() == ""
    repo.git("checkout", "-q", "main")
    assert repo.read("ckpt/model.pt") == second
    assert torch.load(repo.path / "ckpt/model.pt", weights_only=True)["epoch"] == 8
