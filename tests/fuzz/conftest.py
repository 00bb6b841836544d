"""Loads the fuzz tests' Hypothesis profile (see budget.py)."""

import fuzz.budget  # noqa: F401
