"""The merge-policy reader: a policy, or one `SpecError` naming the file, for any file a branch can bring."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz.budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from theta.errors import ThetaError
from theta.plugins import default_manager

policy = pytest.importorskip("theta.merging.policy")

REGISTRY = default_manager().registry
VALID = sorted((Path(__file__).resolve().parents[2] / "specs" / "merge-policy" / "v1" / "valid").glob("*.toml"))
STRATEGIES = [*sorted(REGISTRY.merge_strategies), "no-such-strategy"]
VERSIONS = ["1", "2", "0", '"1"']
OPTION_NAMES = ["t", "weights", "density", "seed", "x"]
VALUES = st.recursive(
    st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    if isinstance(value, (int,)):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').encode("unicode_escape").decode() + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"


@st.composite
def policies(draw: st.DrawFn) -> bytes:
    lines = []
    if draw(st.booleans()):
        lines.append(f"version = {draw(st.sampled_from(VERSIONS))}")
    if draw(st.booleans()):
        lines.append(f'default = {{ strategy = "{draw(st.sampled_from(STRATEGIES))}" }}')
    for _ in range(draw(st.integers(0, 3))):
        lines.append("[[rules]]")
        globs = draw(st.lists(st.text("ab*?[]!.-_0123456789", max_size=8), max_size=3))
        lines.append(f"params = {toml_value(globs)}")
        if draw(st.booleans()):
            lines.append(f"paths = {toml_value(draw(st.lists(st.text(max_size=6), max_size=2)))}")
        lines.append(f'strategy = "{draw(st.sampled_from(STRATEGIES))}"')
        if draw(st.booleans()):
            options = draw(st.dictionaries(st.sampled_from(OPTION_NAMES), VALUES, max_size=3))
            lines.append(f"options = {toml_value(options)}")
        if draw(st.booleans()):
            lines.append(f"{draw(st.sampled_from(['extra', 'strategy', 'params']))} = {toml_value(draw(VALUES))}")
    return "\n".join(lines).encode()


def read(data: bytes) -> None:
    try:
        policy.parse_policy(data, "merge-policy.toml", REGISTRY)
    except ThetaError as exc:
        assert str(exc).startswith("merge-policy.toml") and "\n" not in str(exc).strip(), str(exc)
    except Exception as exc:
        raise AssertionError(f"the policy reader raised {type(exc).__name__}: {str(exc)[:300]}") from None


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_policies_are_read(path: Path) -> None:
    policy.parse_policy(path.read_bytes(), path.name, REGISTRY)


@settings(max_examples=examples(200))
@given(policies())
def test_generated_policies_are_read_or_refused(data: bytes) -> None:
    read(data)


@settings(max_examples=examples(100))
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_refused(data: bytes) -> None:
    read(data)


def test_deeply_nested_options_are_refused() -> None:
    read(b'[[rules]]\nparams = ["*"]\nstrategy = "average"\noptions = { x = ' + b"[" * 5000 + b"]" * 5000 + b" }\n")
