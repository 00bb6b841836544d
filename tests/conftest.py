"""Fixtures for the end-to-end tests."""

from __future__ import annotations

import pytest
from sample_models import checkpoint_bytes, make_model


@pytest.fixture
def v1() -> bytes:
    return checkpoint_bytes(make_model())
