"""`git theta diff`: golden text, figures against numpy, chains of updates, selections, renderers."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from diff_samples import ADDED, CHANGED, MODEL, REMOVED, RESHAPED, UNCHANGED, arrays, expected_figures
from diff_samples import version_one as make_v1
from diff_samples import version_two as make_v2

from theta.testing import GitRepo

GOLDEN = Path(__file__).parent / "golden" / "diff_text.txt"
UPDATE_GOLDEN = "THETA_UPDATE_GOLDEN"
SIZE = re.compile(r"\b\d+(?:\.\d)? (?:B|KiB|MiB|GiB)\b")


def normalized(text: str) -> str:
    """The text with stored sizes (which follow the object codecs' ratios) and the padding they cause blanked."""
    return re.sub(r" {2,}", "  ", SIZE.sub("<size>", text))


def assert_golden(text: str) -> None:
    assert normalized(text) == normalized(GOLDEN.read_text())
    rows = [line for line in text.splitlines() if line.startswith(("+ ", "- "))]
    assert len({re.search(r"\s(b?float)", line).start(1) for line in rows}) == 1  # type: ignore[union-attr]


def commit(repo: GitRepo, data: bytes, message: str, *config: str) -> None:
    repo.write(MODEL, data)
    settings = [arg for item in config for arg in ("-c", item)]
    repo.git(*settings, "add", MODEL)
    repo.git("commit", "-q", "-m", message)


@pytest.fixture
def two_versions(repo: GitRepo) -> GitRepo:
    """v1 and its fine-tune v2, committed with every changed tensor stored whole (stable sizes)."""
    repo.theta("track", "*.safetensors")
    commit(repo, make_v1(), "v1", "theta.updateType=dense")
    commit(repo, make_v2(), "v2", "theta.updateType=dense")
    return repo


def json_diff(repo: GitRepo, *args: str) -> list[dict]:
    out = repo.theta("diff", "--json", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_text_output_matches_the_golden_file(two_versions: GitRepo) -> None:
    text = two_versions.theta("diff", "HEAD~1", "HEAD").stdout
    if os.environ.get(UPDATE_GOLDEN):
        GOLDEN.write_text(text)
    assert_golden(text)
    assert "\x1b" not in text  # piped: plain


def test_git_diff_prints_the_same_text(two_versions: GitRepo) -> None:
    assert two_versions.git("diff", "HEAD~1", "HEAD").stdout == two_versions.theta("diff", "HEAD~1", "HEAD").stdout
    assert_golden(two_versions.git("diff", "HEAD~1", "HEAD").stdout)


def test_json_figures_match_numpy(two_versions: GitRepo) -> None:
    (diff,) = json_diff(two_versions, "HEAD~1", "HEAD")
    assert (diff["path"], diff["old"], diff["new"]) == (MODEL, "HEAD~1", "HEAD")
    params = {p["name"]: p for p in diff["parameters"]}
    old, new = arrays(make_v1()), arrays(make_v2())
    stored = json.loads(two_versions.blob(f"HEAD:{MODEL}"))["parameters"]
    for name in CHANGED:
        expected = expected_figures(old[name], new[name])
        for key, value in expected.items():
            assert params[name][key] == pytest.approx(value, rel=1e-12, abs=1e-15), (name, key)
        assert params[name]["status"] == "changed" and params[name]["update"] == "dense"
        last = stored[name]["steps"][-1]["objects"].values()
        assert params[name]["stored_bytes"] == sum(o["size"] for o in last) > 0
    assert params[ADDED]["status"] == "added" and params[ADDED]["shape"] == [4, 16]
    assert params[REMOVED]["status"] == "removed" and params[REMOVED]["update"] is None
    reshaped = params[RESHAPED]
    assert (reshaped["status"], reshaped["shape"], reshaped["old_shape"]) == ("changed", [32, 16], [16, 32])
    assert reshaped["l2"] is None and reshaped["relative"] is None
    for name in UNCHANGED:
        assert params[name]["status"] == "unchanged" and params[name]["stored_bytes"] == 0
    summary = diff["summary"]
    assert (summary["changed"], summary["added"], summary["removed"], summary["unchanged"]) == (4, 1, 1, 2)
    assert summary["reshaped"] == 1
    # what v2 cost the store: the changed and added tensors, and the new skeleton
    old_objects = objects_of(json.loads(two_versions.blob(f"HEAD~1:{MODEL}")))
    new_objects = objects_of(json.loads(two_versions.blob(f"HEAD:{MODEL}")))
    assert summary["stored_bytes"] == sum(size for oid, size in new_objects.items() if oid not in old_objects)


def objects_of(metadata: dict) -> dict[str, int]:
    found = {metadata["skeleton"]["oid"]: metadata["skeleton"]["size"]}
    for param in metadata["parameters"].values():
        for step in param["steps"]:
            found.update({o["oid"]: o["size"] for o in step["objects"].values()})
    return found


def test_keys_of_every_parameter(two_versions: GitRepo) -> None:
    (diff,) = json_diff(two_versions, "HEAD~1..HEAD")
    keys = ["name", "status", "dtype", "shape", "old_dtype", "old_shape", "l2", "relative", "max_abs"]
    keys += ["changed_fraction", "cosine", "update", "stored_bytes"]
    assert all(list(p) == keys for p in diff["parameters"])
    assert list(diff) == ["path", "old", "new", "parameters", "summary"]


def test_working_tree_and_index(two_versions: GitRepo) -> None:
    repo = two_versions
    new = arrays(make_v2())
    new["fc2.bias"] = new["fc2.bias"] + np.float32(0.25)
    from safetensors.numpy import save

    repo.write(MODEL, save(new))
    (worktree,) = json_diff(repo)
    assert (worktree["old"], worktree["new"]) == ("index", None)
    changed = {p["name"]: p for p in worktree["parameters"] if p["status"] != "unchanged"}
    assert list(changed) == ["fc2.bias"]
    assert changed["fc2.bias"]["update"] is None and worktree["summary"]["stored_bytes"] is None
    assert changed["fc2.bias"]["max_abs"] == pytest.approx(0.25)
    assert "not stored yet" in repo.theta("diff").stdout
    assert json_diff(repo, "--cached") == []
    repo.git("add", MODEL)
    (staged,) = json_diff(repo, "--cached")
    assert (staged["old"], staged["new"]) == ("HEAD", "index")
    assert [p["name"] for p in staged["parameters"] if p["status"] == "changed"] == ["fc2.bias"]
    assert staged["summary"]["stored_bytes"] > 0
    (against_head,) = json_diff(repo, "HEAD~1")
    assert against_head["summary"]["changed"] == 5  # the fine-tune's four and the working tree's one


def test_params_select_by_whole_name(two_versions: GitRepo) -> None:
    (diff,) = json_diff(two_versions, "HEAD~1", "HEAD", "--params", "fc1.*")
    assert [p["name"] for p in diff["parameters"]] == ["fc1.bias", "fc1.weight"]
    (none,) = json_diff(two_versions, "HEAD~1", "HEAD", "--params", "fc1")  # anchored: no substring match
    assert none["parameters"] == []


def test_paths_after_double_dash(two_versions: GitRepo) -> None:
    repo = two_versions
    repo.write("other.safetensors", make_v1())
    repo.git("add", "other.safetensors")
    repo.git("commit", "-q", "-m", "other")
    assert [d["path"] for d in json_diff(repo, "HEAD~2", "HEAD")] == [MODEL, "other.safetensors"]
    assert [d["path"] for d in json_diff(repo, "HEAD~2", "HEAD", "--", "other.safetensors")] == ["other.safetensors"]
    (added,) = json_diff(repo, "HEAD~1", "HEAD")
    assert added["summary"]["added"] == len(arrays(make_v1()))


def test_diff_across_an_incremental_chain(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    states = [arrays(make_v1())]
    for step in range(3):
        state = dict(states[-1])
        tensor = state["fc1.weight"].copy()
        tensor[step, :3] += np.float32(0.5)
        state["fc1.weight"] = tensor
        states.append(state)
    from safetensors.numpy import save

    for i, state in enumerate(states):
        commit(repo, save(state), f"v{i}")
    chain = json.loads(repo.blob(f"HEAD:{MODEL}"))["parameters"]["fc1.weight"]["steps"]
    assert len(chain) == 4 and chain[0]["update"] == "dense" and chain[-1]["update"] != "dense"
    (diff,) = json_diff(repo, "HEAD~3", "HEAD")
    (param,) = [p for p in diff["parameters"] if p["status"] == "changed"]
    assert param["name"] == "fc1.weight" and param["update"] == chain[-1]["update"]
    for key, value in expected_figures(states[0]["fc1.weight"], states[3]["fc1.weight"]).items():
        assert param[key] == pytest.approx(value, rel=1e-12), key
    assert param["changed_fraction"] == pytest.approx(9 / states[0]["fc1.weight"].size)
    (last,) = json_diff(repo, "HEAD~1", "HEAD")
    (step,) = [p for p in last["parameters"] if p["status"] == "changed"]
    assert step["l2"] == pytest.approx(np.sqrt(3 * 0.25), rel=1e-6)
    assert step["stored_bytes"] == sum(o["size"] for o in chain[-1]["objects"].values())


def test_plot_has_the_json_data(two_versions: GitRepo, tmp_path: Path) -> None:
    from PIL import Image

    target = tmp_path / "diff.png"
    text = two_versions.theta("diff", "HEAD~1", "HEAD", "--plot", str(target)).stdout
    assert_golden(text)  # the text is printed as well
    image = Image.open(target)
    assert image.format == "PNG" and image.size[0] >= 800 and image.size[1] >= 400
    ((path, bars),) = json.loads(image.text["theta-diff"])
    (diff,) = json_diff(two_versions, "HEAD~1", "HEAD")
    assert path == MODEL
    assert [name for name, _ in bars] == [p["name"] for p in diff["parameters"]]
    for (_, value), param in zip(bars, diff["parameters"], strict=True):
        if param["status"] == "changed" and param["relative"] is not None:
            assert value == pytest.approx(param["relative"])
        elif param["status"] == "unchanged":
            assert value == 0


def test_format_picks_a_renderer(two_versions: GitRepo, tmp_path: Path) -> None:
    assert two_versions.theta("diff", "HEAD~1", "HEAD", "--format", "json").stdout.startswith('{"path"')
    result = two_versions.theta("diff", "HEAD~1", "HEAD", "--format", "html", check=False)
    assert result.returncode == 1 and "no diff renderer 'html' is installed" in result.stderr
    result = two_versions.theta("diff", "HEAD~1", "HEAD", "--format", "plot", check=False)
    assert result.returncode == 1 and "--output FILE" in result.stderr
    target = tmp_path / "p.png"
    two_versions.theta("diff", "HEAD~1", "HEAD", "--format", "plot", "-o", str(target))
    assert target.stat().st_size > 0
    two_versions.git("config", "theta.diffFormat", "json")
    assert two_versions.git("diff", "HEAD~1", "HEAD").stdout.startswith('{"path"')


def test_colour_when_asked(two_versions: GitRepo) -> None:
    coloured = two_versions.theta("diff", "HEAD~1", "HEAD", "--color", "always").stdout
    assert "\x1b[31m- fc1.bias" in coloured and "\x1b[32m+ head.weight" in coloured
    assert two_versions.git("-c", "color.diff=always", "diff", "HEAD~1", "HEAD").stdout.startswith("\x1b[1mdiff")


def test_bad_revision_is_one_line(two_versions: GitRepo) -> None:
    result = two_versions.theta("diff", "nosuchrev", "HEAD", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "theta: error: unknown revision 'nosuchrev' (not a commit in this repository)"


def test_missing_objects_leave_out_figures_not_the_diff(two_versions: GitRepo) -> None:
    import shutil

    for store in (two_versions.path / ".git" / "lfs" / "objects", two_versions.path / ".git" / "theta" / "objects"):
        shutil.rmtree(store, ignore_errors=True)  # never pushed: the remote has none of them either
    result = two_versions.theta("diff", "--json", "HEAD~1", "HEAD")
    (diff,) = [json.loads(line) for line in result.stdout.splitlines()]
    changed = [p for p in diff["parameters"] if p["status"] == "changed"]
    assert len(changed) == 4 and all(p["l2"] is None for p in changed)
    assert "its figures are left out" in result.stderr and "fc1.bias" in result.stderr
