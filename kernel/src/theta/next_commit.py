"""Choosing how the next commit stores a file: side-loaded update data, squash requests."""

from __future__ import annotations

from pathlib import Path

from theta.checkpoints import choose_format
from theta.errors import ThetaError
from theta.formats import open_file_source
from theta.git.repo import Repo
from theta.plugins import Registry
from theta.tensors import Tensor

SQUASH_FILE = "squash"


def load_side_data(path: Path, registry: Registry) -> dict[str, dict[str, Tensor]]:
    """Read a checkpoint of update data; a key `<parameter>.<array>` gives `array` for `parameter`."""
    if not path.is_file():
        raise ThetaError(f"update data file {path} does not exist")
    grouped: dict[str, dict[str, Tensor]] = {}
    with open_file_source(path) as source:
        fmt = choose_format(registry, str(path), source.head, None)
        for key, tensor in fmt.read(source).parameters:
            parameter, dot, array = key.rpartition(".")
            if not dot:
                raise ThetaError(f"{path}: key {key!r} must be '<parameter>.<array>' (e.g. 'layer.weight.lora_a')")
            grouped.setdefault(parameter, {})[array] = Tensor(
                dtype=tensor.dtype, shape=tensor.shape, data=bytes(tensor.data)
            )
    return grouped


def squash_requests(repo: Repo) -> set[str]:
    path = repo.theta_dir / SQUASH_FILE
    if not path.exists():
        return set()
    return {line for line in path.read_text().splitlines() if line}


def request_squash(repo: Repo, paths: list[str]) -> None:
    current = squash_requests(repo) | set(paths)
    repo.theta_dir.mkdir(parents=True, exist_ok=True)
    (repo.theta_dir / SQUASH_FILE).write_text("".join(f"{p}\n" for p in sorted(current)))


def clear_squash_requests(repo: Repo) -> None:
    (repo.theta_dir / SQUASH_FILE).unlink(missing_ok=True)
