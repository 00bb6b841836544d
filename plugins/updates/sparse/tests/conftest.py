"""Loads updatekit.py, the helpers that the sparse, low-rank and ia3 tests share, as `updatekit`."""

import importlib.util
import sys
from pathlib import Path

if "updatekit" not in sys.modules:
    spec = importlib.util.spec_from_file_location("updatekit", Path(__file__).with_name("updatekit.py"))
    assert spec is not None and spec.loader is not None
    sys.modules["updatekit"] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
