import sys
from pathlib import Path

# The tests share model builders in onnx_models.py; pytest's importlib mode does not put this folder on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
