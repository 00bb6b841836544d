"""The update types' tests share one helper module, `updatekit`, kept with the sparse type's tests."""

import importlib.util
from pathlib import Path

loader = importlib.util.spec_from_file_location(
    "updatekit_loader", Path(__file__).parents[2] / "sparse/tests/conftest.py"
)
assert loader is not None and loader.loader is not None
loader.loader.exec_module(importlib.util.module_from_spec(loader))
