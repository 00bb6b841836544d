"""The kernel's layers: a module imports only from its own layer or lower ones.

Git plumbing (`theta.git`) and the core (clean/smudge, the store) know nothing of each other;
the session wires them; the application (`theta.app`) sits on top. A new module must be given
a layer here, so the shape stays a decision rather than an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "theta"

# (layer, prefixes): a module belongs to the first entry whose prefix matches its name.
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("theta.errors", "theta.tensors", "theta.sizes", "theta.progress", "theta.specfiles")),
    (1, ("theta.formats", "theta.updates", "theta.merges", "theta.diffs", "theta.bits", "theta.splice")),
    (1, ("theta.metadata",)),
    (1, ("theta.peft", "theta.sharded")),
    (2, ("theta.hookspecs", "theta.plugins", "theta.catalog")),
    (3, ("theta.store", "theta.checkpoints", "theta.prefetch", "theta.downloads")),
    (3, ("theta.git",)),
    (4, ("theta.session", "theta.next_commit")),
    (5, ("theta.merging", "theta.diffing", "theta.api", "theta.models")),
    (6, ("theta.app",)),
    (7, ("theta.testing",)),
]
# Parts of one layer that must not see each other.
SEPARATE = [
    ("theta.git", ("theta.store", "theta.checkpoints", "theta.plugins")),
    ("theta.store", ("theta.git",)),
    ("theta.checkpoints", ("theta.git",)),
]


def layer_of(module: str) -> int:
    if module == "theta":
        return 1  # the SDK facade: it loads SDK names lazily
    for layer, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    raise AssertionError(f"module {module} has no layer in kernel/tests/test_layers.py: give it one")


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names if node.module == "theta"]
    return [name for name in found if name == "theta" or name.startswith("theta.")]


def kernel_modules() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in kernel_modules():
        layer_of(module_name(path))


def test_no_import_runs_up_a_layer() -> None:
    wrong = []
    for path in kernel_modules():
        module = module_name(path)
        for imported in imports(path):
            target = imported
            try:
                target_layer = layer_of(target)
            except AssertionError:
                target_layer = layer_of(target.rpartition(".")[0])  # `from theta.x import name`
            if target_layer > layer_of(module):
                wrong.append(f"{module} imports {imported}")
    assert not wrong, "imports that run up a layer:\n" + "\n".join(wrong)


def test_plumbing_and_core_do_not_know_each_other() -> None:
    wrong = []
    for path in kernel_modules():
        module = module_name(path)
        for part, forbidden in SEPARATE:
            if module == part or module.startswith(part + "."):
                wrong += [f"{module} imports {i}" for i in imports(path) if i.startswith(forbidden)]
    assert not wrong, "\n".join(wrong)
