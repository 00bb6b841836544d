"""The spec examples under specs/: valid ones load and serialise back unchanged, invalid ones
are refused with a message that names the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from theta.errors import SpecError
from theta.metadata import dumps, loads

SPECS = Path(__file__).resolve().parents[2] / "specs"
VALID = sorted((SPECS / "metadata" / "v1" / "valid").glob("*.json"))
INVALID = sorted((SPECS / "metadata" / "v1" / "invalid").glob("*.json"))


def test_examples_exist() -> None:
    assert len(VALID) >= 3 and len(INVALID) >= 8


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_metadata_round_trips(path: Path) -> None:
    data = path.read_bytes()
    assert dumps(loads(data, path.name)) == data


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_metadata_is_refused_by_field(path: Path) -> None:
    expected = path.with_suffix(".error").read_text().strip()
    with pytest.raises(SpecError) as caught:
        loads(path.read_bytes(), path.name)
    message = str(caught.value)
    assert message.startswith(f"{path.name}: ")
    assert expected in message
