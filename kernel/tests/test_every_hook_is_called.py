"""Every hook in `theta.hookspecs` has a caller: what a plugin registers through it is used.

A recording plugin (kernel/tests/recorder/theta_recorder.py) is installed as a distribution
(a `.dist-info` with its entry point, on PYTHONPATH) and real git commands are driven: add,
commit, an incremental commit, a merge under a policy naming its strategy, a diff in its
renderer. A hook spec added without a caller, or without an object here, fails this test.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
from pathlib import Path

import numpy as np

from theta import hookspecs
from theta.testing import GitRepo

RECORDER = Path(__file__).resolve().parent / "recorder" / "theta_recorder.py"
DIST_INFO = {
    "METADATA": "Metadata-Version: 2.1\nName: theta-recorder\nVersion: 1.0\n",
    "entry_points.txt": "[theta]\nrecorder = theta_recorder:plugin\n",
}
POLICY = 'version = 1\ndefault = { strategy = "fail" }\n\n[[rules]]\nparams = ["*"]\nstrategy = "rec-theirs"\n'


def hook_names() -> set[str]:
    return {n for n, f in vars(hookspecs).items() if n.startswith("theta_") and inspect.isfunction(f)}


def install_recorder(site: Path) -> None:
    site.mkdir(parents=True)
    shutil.copy(RECORDER, site / RECORDER.name)
    info = site / "theta_recorder-1.0.dist-info"
    info.mkdir()
    for name, text in DIST_INFO.items():
        (info / name).write_text(text)


def test_every_hook_has_a_caller(repo: GitRepo, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("theta_recorder", RECORDER)
    assert spec is not None and spec.loader is not None
    recorder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recorder)
    rec_file = recorder.rec_file
    install_recorder(tmp_path / "site")
    log = tmp_path / "calls.log"
    repo.env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), repo.env.get("PYTHONPATH", "")]),
        THETA_RECORDER_LOG=str(log),
    )
    assert "theta-recorder" in repo.theta("plugins").stdout

    rng = np.random.default_rng(0)
    v1 = {"w": rng.standard_normal(4096).astype(np.float32), "b": np.zeros(64, np.float32)}
    repo.theta("track", "*.rec")
    repo.write("model.rec", rec_file(v1))
    repo.commit_all("v1")
    ours = dict(v1, w=v1["w"].copy())
    ours["w"][3] += 1
    repo.git("checkout", "-q", "-b", "other")
    theirs = dict(v1, w=v1["w"].copy())
    theirs["w"][5] += 1
    repo.write("model.rec", rec_file(theirs))
    repo.commit_all("theirs")
    repo.git("checkout", "-q", "main")
    repo.write("model.rec", rec_file(ours))
    repo.write(".theta/merge-policy.toml", POLICY.encode())
    repo.commit_all("ours")
    repo.git("merge", "-q", "--no-edit", "other")
    assert repo.read("model.rec") == rec_file(theirs)
    shown = repo.theta("diff", "HEAD~1", "HEAD", "--format", "rec-lines").stdout
    assert "rec model.rec w changed" in shown

    called = {line.split(":")[0] for line in log.read_text().splitlines()}
    assert called == hook_names(), f"hooks whose registered objects were never used: {hook_names() - called}"
