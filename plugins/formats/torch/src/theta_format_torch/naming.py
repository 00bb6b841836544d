"""Parameter names: each storage is named after a tensor that uses it.

The object tree is walked depth first in its own order (dicts in insertion order, which is
the order `torch.save` wrote them); a tensor's path is its keys and list indices joined by
dots (`model.encoder.layer.0.weight`). The first tensor that covers a storage whole and
contiguously names it, and the parameter has that tensor's dtype and shape; a storage that
no tensor covers (only slices or transposes use it) is named after the first tensor that
uses it and is the flat 1-D storage. A path already taken gets `@<storage key>` appended, so names stay
unique and, since torch numbers storages in pickle order, stable across saves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from attrs import frozen

from theta_format_torch.safepickle import ParameterRef, StorageRef, TensorRef

ROOT_NAME = "tensor"


@frozen(kw_only=True)
class Plan:
    """How one storage appears as a parameter."""

    name: str
    key: str
    dtype: str
    shape: tuple[int, ...]
    whole: bool


def _children(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key), value
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield str(index), value
    elif isinstance(node, ParameterRef):
        yield "", node.tensor
    elif isinstance(node, (set, frozenset)):
        raise ValueError("sets hold no tensors")


def walk(tree: Any) -> Iterator[tuple[str, TensorRef | StorageRef]]:
    """Every tensor and bare storage in `tree` with its dotted path, depth first."""
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", tree)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, (TensorRef, StorageRef)):
            yield path, node
            continue
        if id(node) in seen or not isinstance(node, (dict, list, tuple, ParameterRef)):
            continue
        seen.add(id(node))
        children = [(f"{path}.{key}" if path and key else path or key, child) for key, child in _children(node)]
        stack.extend(reversed(children))


def plan_parameters(tree: Any) -> list[Plan]:
    """One `Plan` per storage that the tree uses, in the order the walk first meets them."""
    chosen: dict[str, tuple[str, TensorRef | StorageRef]] = {}
    for path, node in walk(tree):
        storage = node.storage if isinstance(node, TensorRef) else node
        known = chosen.get(storage.key)
        covering = isinstance(node, TensorRef) and node.covers_storage()
        if known is None:
            chosen[storage.key] = (path, node)
        elif covering and not (isinstance(known[1], TensorRef) and known[1].covers_storage()):
            chosen[storage.key] = (path, node)  # a tensor that covers the storage names it over a view
    plans = []
    taken: set[str] = set()
    for key, (path, node) in chosen.items():
        storage = node.storage if isinstance(node, TensorRef) else node
        name = path or ROOT_NAME
        while name in taken:
            name = f"{name}@{key}"
        whole = isinstance(node, TensorRef) and node.covers_storage()
        shape = node.size if whole and isinstance(node, TensorRef) else (storage.numel,)
        plans.append(Plan(name=name, key=key, dtype=storage.dtype, shape=shape, whole=whole))
        taken.add(name)
    return plans
