"""The strategies against mergekit 0.1.5 itself, run in an environment of its own.

mergekit pins its own dependencies, so it is never installed next to Theta: the test uses
the interpreter named by THETA_MERGEKIT_PYTHON, or builds a throwaway virtual environment
with `mergekit==0.1.5` over links to the running environment's packages (its `torch==2.13.0`
among them; skipped when mergekit cannot be installed).
DARE's random drop is compared with the mask the strategy draws, handed to mergekit in place
of torch's generator; torch's argsort orders equal magnitudes arbitrarily, so the runner makes
it stable (lowest index first, as `ties` keeps them).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from theta.merges import structure_options
from theta.plugins import default_manager
from theta.tensors import Tensor
from theta.testing import FreshEnvironment
from theta.testing.environments import running_versions

pytestmark = pytest.mark.slow

RUNNER = r"""
import json, sys
import numpy as np, torch
from mergekit.merge_methods import registry
from mergekit.merge_methods.base import TensorGroup

cases = json.loads(open(sys.argv[1]).read())
arrays = np.load(sys.argv[2])
out = {}
for case in cases:
    b, o, t = (torch.from_numpy(arrays[f"{case['id']}.{k}"]) for k in ("base", "ours", "theirs"))
    masks = [torch.from_numpy(arrays[f"{case['id']}.mask{i}"]) for i in range(case.get("masks", 0))]
    real, real_argsort = torch.bernoulli, torch.argsort
    torch.bernoulli = lambda p, *a, **k: masks.pop(0).to(p.dtype) if masks else real(p, *a, **k)
    torch.argsort = lambda x, *a, **k: real_argsort(x, *a, **{**k, "stable": True})
    try:
        if case["method"] in ("linear", "slerp"):
            base_index = 0 if case["method"] == "slerp" else None
            group = TensorGroup.from_tensors([o, t], ids=("ours", "theirs"), base_index=base_index)
        else:
            group = TensorGroup.from_tensors([b, o, t], ids=("base", "ours", "theirs"), base_index=0)
        result = registry.get(case["method"])([group], parameters=case["parameters"], dtype=torch.float32)[0]
    finally:
        torch.bernoulli, torch.argsort = real, real_argsort
    out[case["id"]] = result.float().numpy()
np.savez(sys.argv[3], **out)
"""


@pytest.fixture(scope="session")
def mergekit_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    given = os.environ.get("THETA_MERGEKIT_PYTHON")
    if given:
        return given
    env = FreshEnvironment(tmp_path_factory.mktemp("mergekit"), hold_versions=False)
    # What the running environment has (the pinned CPU torch among it) is linked rather than
    # downloaded again; mergekit's own pins are installed over it where they differ.
    env.link(pin.split("==")[0] for pin in running_versions())
    try:
        env.install("torch==2.13.0", "mergekit==0.1.5")
    except AssertionError as failed:
        pytest.skip(f"mergekit could not be installed here: {str(failed).strip()[-300:]}")
    return str(env.python)


def tensors(dtype: str, seed: int, shape: tuple[int, ...] = (24, 40)) -> tuple[list[Tensor], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(shape).astype(np.float32)
    values = [
        base,
        base + rng.normal(0, 0.05, shape).astype(np.float32),
        0.8 * base + rng.normal(0, 0.3, shape).astype(np.float32),
    ]
    if dtype == "bfloat16":
        rounded = [v.astype(ml_dtypes.bfloat16) for v in values]
        return [Tensor.from_numpy(r.view(np.uint16), dtype_name="bfloat16") for r in rounded], [
            r.astype(np.float32) for r in rounded
        ]
    return [Tensor.from_numpy(v) for v in values], values


# (strategy, its options, mergekit method, mergekit parameters)
CASES = [
    ("average", {"weight": 0.3}, "linear", {"weight": {"ours": 0.7, "theirs": 0.3}}),
    (
        "task-arithmetic",
        {"scale": 0.7, "weights": [1.0, 0.4]},
        "task_arithmetic",
        {"lambda": 0.7, "weight": {"ours": 1.0, "theirs": 0.4}},
    ),
    ("ties", {"density": 1.0}, "ties", {"density": 1.0, "weight": {"ours": 1.0, "theirs": 1.0}}),
    ("ties", {"density": 0.2, "scale": 1.0}, "ties", {"density": 0.2, "weight": {"ours": 1.0, "theirs": 1.0}}),
    (
        "ties",
        {"density": 0.5, "scale": 0.8, "weights": [0.6, 1.0]},
        "ties",
        {"density": 0.5, "lambda": 0.8, "weight": {"ours": 0.6, "theirs": 1.0}},
    ),
    ("dare", {"density": 0.4, "seed": 3}, "dare_linear", {"density": 0.4, "weight": {"ours": 1.0, "theirs": 1.0}}),
    (
        "dare",
        {"density": 0.6, "rescale": False, "weights": [1.0, 0.5]},
        "dare_linear",
        {"density": 0.6, "rescale": False, "weight": {"ours": 1.0, "theirs": 0.5}},
    ),
    (
        "dare",
        {"density": 0.3, "sign_election": True},
        "dare_ties",
        {"density": 0.3, "normalize": True, "weight": {"ours": 1.0, "theirs": 1.0}},
    ),
    ("slerp", {"t": 0.3, "rows": False}, "slerp", {"t": 0.3}),
    ("slerp", {"t": 0.75, "rows": False}, "slerp", {"t": 0.75}),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_results_equal_mergekit_within_float32_rounding(mergekit_python: str, tmp_path: Path, dtype: str) -> None:
    import json

    from theta_merge_ties.dropout import keep_masks

    registry = default_manager().registry
    arrays: dict[str, np.ndarray] = {}
    cases, ours_results = [], {}
    for index, (name, options, method, parameters) in enumerate(CASES):
        case_id = f"c{index}"
        (base, ours, theirs), (b, o, t) = tensors(dtype, seed=index)
        strategy = registry.merge_strategy(name)
        structured = structure_options(strategy.options_type, options, "options", name)
        merged = strategy.merge("layers.0.mlp.weight", base, ours, theirs, structured)
        assert isinstance(merged, Tensor), merged
        ours_results[case_id] = merged
        arrays.update({f"{case_id}.base": b, f"{case_id}.ours": o, f"{case_id}.theirs": t})
        case = {"id": case_id, "method": method, "parameters": parameters}
        if name == "dare":
            for side in (0, 1):
                mask = np.concatenate(
                    [m for _, m in keep_masks(structured.seed, "layers.0.mlp.weight", side, structured.density, b.size)]
                )
                arrays[f"{case_id}.mask{side}"] = mask.reshape(b.shape).astype(np.float32)
            case["masks"] = 2
        cases.append(case)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    np.savez(tmp_path / "inputs.npz", **arrays)
    (tmp_path / "runner.py").write_text(RUNNER)
    proc = subprocess.run(
        [
            mergekit_python,
            str(tmp_path / "runner.py"),
            str(tmp_path / "cases.json"),
            str(tmp_path / "inputs.npz"),
            str(tmp_path / "out.npz"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = np.load(tmp_path / "out.npz")
    for index, (name, options, method, _) in enumerate(CASES):
        case_id = f"c{index}"
        expected = theirs[case_id]
        if dtype == "bfloat16":
            got = ours_results[case_id].numpy().view(ml_dtypes.bfloat16).astype(np.float32)
            want = expected.astype(ml_dtypes.bfloat16).astype(np.float32)
            step = np.spacing(np.abs(want)) * 2**16  # one bfloat16 step
        else:
            got, want = ours_results[case_id].numpy(), expected
            step = 4 * np.spacing(np.abs(want).astype(np.float32)) + 1e-7
        worst = float(np.max(np.abs(got - want) - step))
        assert worst <= 0, f"{name} {options} differs from mergekit {method}: worst excess {worst}"
