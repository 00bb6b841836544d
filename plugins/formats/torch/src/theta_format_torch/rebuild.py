"""Writing a checkpoint whose parameters no longer fit the skeleton (after a merge).

The skeleton's `data.pkl` is read again with the restricted unpickler, its placeholders are
turned into real torch objects from the layout's tensors, and the result is written with
`torch.save`. Rules:
- a parameter whose dtype and shape are unchanged is its storage again, so every view of it
  (slices, tied weights) comes back as it was;
- a parameter that changed dtype or shape replaces the tensor(s) that covered its storage
  whole; when views (slices, transposes) of that storage are saved too, or only views use it,
  it cannot change (a `FormatError` says so);
- a parameter missing from the layout drops the dict entries that held its tensors;
- a parameter the skeleton does not know is added to the top-level dict under its name.
Every storage is written as a CPU storage; non-tensor values are kept as they were.

This is the only path that needs torch, which the `theta-format-torch[torch]` extra installs.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import OrderedDict
from typing import Any, BinaryIO

from theta.errors import FormatError, ThetaError
from theta.formats import Layout
from theta.splice import Region, Skeleton
from theta.tensors import Tensor
from theta_format_torch import safepickle
from theta_format_torch.format import pickle_bytes
from theta_format_torch.safepickle import DeviceRef, DTypeRef, ParameterRef, SizeRef, StorageRef, TensorRef


def _torch_tensor(tensor: Tensor) -> Any:
    import torch

    torch_dtype = getattr(torch, safepickle.THETA_TO_TORCH[tensor.dtype])
    flat = (
        torch.frombuffer(bytearray(tensor.data), dtype=torch.uint8)
        if tensor.nbytes
        else torch.empty(0, dtype=torch.uint8)
    )
    return flat.view(torch_dtype).reshape(tensor.shape)


class _Converter:
    """Turns the placeholder tree into torch objects, keeping shared objects shared."""

    def __init__(
        self, names: dict[str, str], flat: dict[str, Any], replaced: dict[str, Any], dropped: set[str]
    ) -> None:
        self.names = names
        self.flat = flat
        self.replaced = replaced
        self.dropped = dropped
        self.memo: dict[int, Any] = {}

    def __call__(self, node: Any) -> Any:
        if id(node) in self.memo:
            return self.memo[id(node)]
        result = self._convert(node)
        self.memo[id(node)] = result
        return result

    def _storage_key(self, node: Any) -> str | None:
        if isinstance(node, ParameterRef):
            node = node.tensor
        if isinstance(node, TensorRef):
            return node.storage.key
        return node.key if isinstance(node, StorageRef) else None

    def _convert(self, node: Any) -> Any:
        import torch

        if isinstance(node, TensorRef):
            key = node.storage.key
            if key in self.replaced and not node.covers_storage():
                raise FormatError(
                    f"parameter {self.names[key]!r} changed shape or dtype, but a view of it (a slice or transpose)"
                    " is also saved, and that view cannot be recomputed; save the checkpoint again with torch"
                )
            if key in self.replaced:
                return (
                    self.replaced[key].requires_grad_(node.requires_grad) if node.requires_grad else self.replaced[key]
                )
            tensor = self.flat[key].as_strided(node.size, node.stride, node.offset)
            if node.metadata:
                torch._utils.set_tensor_metadata(tensor, node.metadata)
            return tensor.requires_grad_(node.requires_grad) if node.requires_grad else tensor
        if isinstance(node, ParameterRef):
            data = self(node.tensor)
            if node.state is not None:
                return torch._utils._rebuild_parameter_with_state(data, node.requires_grad, OrderedDict(), node.state)
            return torch.nn.Parameter(data.detach(), requires_grad=node.requires_grad)
        if isinstance(node, StorageRef):
            return torch.storage.TypedStorage(
                wrap_storage=self.flat[node.key].untyped_storage(), dtype=self.flat[node.key].dtype, _internal=True
            )
        if isinstance(node, DTypeRef):
            return getattr(torch, node.name)
        if isinstance(node, SizeRef):
            return torch.Size(node)
        if isinstance(node, DeviceRef):
            return torch.device(*node.args)
        if isinstance(node, dict):
            out = type(node)()
            self.memo[id(node)] = out
            for key, value in node.items():
                if self._storage_key(value) not in self.dropped:
                    out[key] = self(value)
            return out
        if isinstance(node, (list, tuple)):
            if any(self._storage_key(v) in self.dropped for v in node):
                raise FormatError("a parameter missing from the layout sits in a list or tuple; it cannot be dropped")
            items = [self(v) for v in node]
            return items if isinstance(node, list) else type(node)(items)
        return node


def _require_torch(skeleton: Skeleton, layout: Layout) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        changed = skeleton.differences(layout.parameters)
        shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
        raise ThetaError(
            f"{layout.path}: the parameters no longer match the saved layout (changed: {shown}), so the file must"
            " be rebuilt with torch.save, and torch is not installed: pip install 'theta-format-torch[torch]'"
        ) from None


def rebuild(skeleton: Skeleton, layout: Layout, sink: BinaryIO) -> None:
    _require_torch(skeleton, layout)
    import torch

    tree, _ = safepickle.load(pickle_bytes(skeleton))
    by_key: dict[str, Region] = {r.extra["key"]: r for r in skeleton.regions}
    flat: dict[str, Any] = {}
    replaced: dict[str, Any] = {}
    dropped: set[str] = set()
    for key, region in by_key.items():
        info = layout.parameters.get(region.name)
        if info is None:
            dropped.add(key)
            continue
        tensor = _torch_tensor(layout.load(region.name))
        if info == region.info:
            flat[key] = tensor.reshape(-1)
        elif region.extra["whole"]:
            replaced[key] = tensor
        else:
            raise FormatError(
                f"{layout.path}: parameter {region.name!r} is a storage that only views use (slices or shared"
                f" weights), so it cannot change from {region.dtype} {list(region.shape)}"
                f" to {info.dtype} {list(info.shape)}"
            )
    names = {key: region.name for key, region in by_key.items()}
    result = _Converter(names, flat, replaced, dropped)(tree)
    known = set(skeleton.parameters)
    added = [name for name in layout.parameters if name not in known]
    if added and not isinstance(result, dict):
        raise FormatError(f"{layout.path}: cannot add parameters {added} to a checkpoint whose top level is not a dict")
    for name in added:
        result[name] = _torch_tensor(layout.load(name))
    with tempfile.TemporaryFile() as spool:
        torch.save(result, spool)
        spool.seek(0)
        shutil.copyfileobj(spool, sink, 1 << 22)
