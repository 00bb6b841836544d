"""Choosing how the next commit stores a file: side-loaded update data, squash requests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from theta import peft
from theta.checkpoints import choose_format
from theta.errors import ThetaError
from theta.formats import open_file_source
from theta.git.repo import Repo
from theta.plugins import Registry
from theta.tensors import Tensor


class SideData(dict[str, dict[str, Tensor]]):
    """Update data per parameter name; `origin` names, per parameter, the file and keys it came from."""

    def __init__(self, source: Path) -> None:
        super().__init__()
        self.source = source
        self.origin: dict[str, str] = {}

    def add(self, parameter: str, array: str, tensor: Tensor, key: str) -> None:
        self.setdefault(parameter, {})[array] = tensor
        self.origin.setdefault(parameter, key)

    def unmatched(self, names: Iterable[str]) -> list[str]:
        """The update data's keys for parameters not among `names`."""
        known = set(names)
        return [self.origin[p] for p in self if p not in known]


def load_side_data(path: Path, registry: Registry) -> SideData:
    """Read update data given with `git theta add --update-data`.

    Either a PEFT LoRA adapter (its directory, or its `adapter_model.safetensors` beside
    `adapter_config.json`), whose factors become `lora_a`/`lora_b` of the weights they adapt,
    or any checkpoint whose keys are `<parameter>.<array>` (e.g. `layer.weight.lora_a`).
    """
    if path.is_dir():
        return load_peft_adapter(path, registry)
    if not path.is_file():
        raise ThetaError(f"update data file {path} does not exist")
    keys = _read_tensors(path, registry)
    if any(k.startswith(peft.PREFIX) for k in keys):
        return load_peft_adapter(path.parent, registry, weights=path, tensors=keys)
    side = SideData(path)
    for key, tensor in keys.items():
        parameter, dot, array = key.rpartition(".")
        if not dot:
            raise ThetaError(f"{path}: key {key!r} must be '<parameter>.<array>' (e.g. 'layer.weight.lora_a')")
        side.add(parameter, array, tensor, key)
    return side


def load_peft_adapter(
    directory: Path, registry: Registry, weights: Path | None = None, tensors: dict[str, Tensor] | None = None
) -> SideData:
    """A PEFT LoRA adapter as low-rank update data: each adapted weight gets the factors of its change."""
    config = peft.read_config(directory / peft.CONFIG_FILE)
    if weights is None:
        found = [directory / name for name in peft.WEIGHT_FILES if (directory / name).is_file()]
        if not found:
            raise ThetaError(f"{directory}: no {' or '.join(peft.WEIGHT_FILES)} in this PEFT adapter directory")
        weights = found[0]
    side = SideData(weights)
    for parameter, arrays in peft.factors(config, tensors or _read_tensors(weights, registry), weights).items():
        for array, (tensor, key) in arrays.items():
            side.add(parameter, array, tensor, key)
    return side


def _read_tensors(path: Path, registry: Registry) -> dict[str, Tensor]:
    found: dict[str, Tensor] = {}
    with open_file_source(path) as source:
        fmt = choose_format(registry, str(path), source.head, None)
        for key, tensor in fmt.read(source).parameters:
            found[key] = Tensor(dtype=tensor.dtype, shape=tensor.shape, data=bytes(tensor.data))
    return found


def check_side_data(side_data: Mapping[str, object], names: Iterable[str], path: str) -> None:
    """Update data for a parameter the checkpoint lacks is an error naming the keys, never ignored."""
    if not isinstance(side_data, SideData) or not side_data:
        return
    unmatched = side_data.unmatched(names)
    if unmatched:
        shown = ", ".join(repr(k) for k in unmatched[:5]) + (
            f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
        )
        raise ThetaError(
            f"{path}: {len(unmatched)} key(s) of the update data {side_data.source} match no parameter of this"
            f" checkpoint: {shown}; give update data made for this model (nothing was staged)"
        )


def squash_requests(repo: Repo) -> set[str]:
    path = repo.squash_requests
    if not path.exists():
        return set()
    return {line for line in path.read_text().splitlines() if line}


def request_squash(repo: Repo, paths: list[str]) -> None:
    current = squash_requests(repo) | set(paths)
    repo.theta_dir.mkdir(parents=True, exist_ok=True)
    repo.squash_requests.write_text("".join(f"{p}\n" for p in sorted(current)))


def clear_squash_requests(repo: Repo) -> None:
    repo.squash_requests.unlink(missing_ok=True)
