"""The metadata reader: valid files round-trip exactly, anything else is one `SpecError`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fuzz.budget import examples
from fuzz.hostile import CORPUS
from hypothesis import given, settings
from hypothesis import strategies as st

from theta.errors import SpecError
from theta.metadata import METADATA_VERSION, Metadata, dumps, loads

OIDS = st.text("0123456789abcdef", min_size=64, max_size=64)
DTYPES = st.sampled_from(["float32", "float16", "bfloat16", "int64", "uint8", "bool"])
SHAPES = st.lists(st.integers(0, 4096), max_size=4)
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=24)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


@st.composite
def arrays(draw: st.DrawFn) -> dict[str, Any]:
    record = {"oid": draw(OIDS), "size": draw(st.integers(0, 2**40)), "dtype": draw(DTYPES), "shape": draw(SHAPES)}
    if draw(st.booleans()):
        record["codec"] = draw(st.sampled_from(["raw", "zstd"]))
    return record


@st.composite
def parameters(draw: st.DrawFn) -> dict[str, Any]:
    hashes = draw(st.lists(OIDS, min_size=1, max_size=2))
    steps = []
    for i, digest in enumerate(hashes):
        step: dict[str, Any] = {"update": "dense" if i == 0 else draw(st.sampled_from(["sparse", "low-rank"]))}
        step["hash"] = "sha256:" + digest
        step["objects"] = draw(st.dictionaries(st.sampled_from(["value", "indices", "a", "b"]), arrays(), max_size=3))
        if draw(st.booleans()):
            step["params"] = draw(st.dictionaries(st.text(min_size=1, max_size=8), JSON, min_size=1, max_size=3))
        steps.append(step)
    return {"dtype": draw(DTYPES), "shape": draw(SHAPES), "hash": steps[-1]["hash"], "steps": steps}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"theta": METADATA_VERSION, "format": draw(st.sampled_from(["safetensors", "pytorch"]))}
    if draw(st.booleans()):
        doc["skeleton"] = {"oid": draw(OIDS), "size": draw(st.integers(0, 2**30))}
    doc["parameters"] = draw(st.dictionaries(NAMES, parameters(), max_size=3))
    return doc


@settings(max_examples=examples(60))
@given(documents())
def test_valid_metadata_round_trips_exactly(doc: dict[str, Any]) -> None:
    metadata = loads(json.dumps(doc).encode(), "m")
    assert isinstance(metadata, Metadata)
    text = dumps(metadata)
    assert dumps(loads(text, "m")) == text
    assert loads(text, "m") == metadata


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


@settings(max_examples=examples(100))
@given(documents(), st.data())
def test_damaged_metadata_is_one_spec_error(doc: dict[str, Any], data: st.DataObject) -> None:
    """Any value anywhere replaced by any JSON value: a valid file, or a one-line error naming the file."""
    path = data.draw(st.sampled_from(_paths(doc)[1:] or [("theta",)]))
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(JSON)
    try:
        loads(json.dumps(doc).encode(), "damaged.json")
    except SpecError as exc:
        assert str(exc).startswith("damaged.json") and "\n" not in str(exc)
        assert "invalid value (" not in str(exc), str(exc)  # a message says what is wrong, not which exception


@settings(max_examples=examples(150))
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_one_spec_error(data: bytes) -> None:
    try:
        loads(data, "bytes.json")
    except SpecError as exc:
        assert str(exc).startswith("bytes.json")


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("metadata-*.json")))
def test_hostile_metadata_corpus_is_refused(name: str) -> None:
    with pytest.raises(SpecError) as refused:
        loads((CORPUS / name).read_bytes(), name)
    assert str(refused.value).startswith(name) and "\n" not in str(refused.value)
