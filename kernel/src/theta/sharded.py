"""Sharded checkpoints as Hugging Face saves them: the shards of one model, and its index.

`save_pretrained` writes a large model as shards `model-00001-of-00003.safetensors`, ... and
an index `model.safetensors.index.json` whose `weight_map` maps each parameter to the shard
that holds it (`pytorch_model-00001-of-00002.bin` with `pytorch_model.bin.index.json` for
torch files). A small model is one file, `model.safetensors`, and no index. Every such
file of one model has the same *model key*: its directory, its stem without the shard
numbers, and its extension (`dir/model.safetensors`); the index is the model key plus
`.index.json`.

Theta stores each shard as its own checkpoint; this module lets the clean find a tensor that
moved to another shard, and lets diff, log and `theta.load` read the shards of one model as
one checkpoint.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence

from attrs import frozen

from theta.errors import ThetaError
from theta.metadata import METADATA_VERSION, Metadata, Parameter

INDEX_SUFFIX = ".index.json"
SHARD = re.compile(r"^(?P<stem>.+)-(?P<number>\d{5})-of-(?P<count>\d{5})(?P<ext>\.[A-Za-z0-9]+)$")
# Extensions of checkpoints that Hugging Face shards.
SHARDED_EXTENSIONS = (".safetensors", ".bin")
# What `save_pretrained` writes beside the weights; small text files git keeps as they are.
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "adapter_config.json",
    "*.index.json",
)


@frozen(kw_only=True)
class ShardIndex:
    """An index file: `path` is its repository path; `weight_map` maps a parameter to its shard's path."""

    path: str
    weight_map: Mapping[str, str]

    @property
    def shards(self) -> list[str]:
        """The shards' repository paths, in order, each once."""
        return sorted(set(self.weight_map.values()))

    def parameters_of(self, shard: str) -> list[str]:
        return [name for name, where in self.weight_map.items() if where == shard]


def is_index(path: str) -> bool:
    return path.endswith(INDEX_SUFFIX) and posixpath.basename(path) != INDEX_SUFFIX


def model_key(path: str) -> str | None:
    """`dir/model.safetensors` for `dir/model-00002-of-00003.safetensors` and for itself; None for other files."""
    directory, name = posixpath.split(path)
    found = SHARD.match(name)
    stem_ext = f"{found['stem']}{found['ext']}" if found else name
    if not stem_ext.endswith(SHARDED_EXTENSIONS):
        return None
    return posixpath.join(directory, stem_ext)


def index_path(path: str) -> str | None:
    """The index file a shard (or an unsharded model file) belongs with."""
    key = model_key(path)
    return None if key is None else key + INDEX_SUFFIX


def same_model(a: str, b: str) -> bool:
    key = model_key(a)
    return key is not None and key == model_key(b)


def parse_index(data: bytes, path: str) -> ShardIndex:
    """Read an index file; shard names in it are relative to its directory. Errors name the file and field."""
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ThetaError(f"{path}: not a JSON file: {exc}") from None
    weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ThetaError(f"{path}: weight_map: expected an object mapping each parameter to its shard")
    directory = posixpath.dirname(path)
    resolved: dict[str, str] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard or shard.startswith("/") or ".." in shard.split("/"):
            raise ThetaError(f"{path}: weight_map[{name!r}]: expected a shard file beside the index, got {shard!r}")
        resolved[name] = posixpath.join(directory, shard)
    return ShardIndex(path=path, weight_map=resolved)


def combine(index: ShardIndex, shards: Mapping[str, Metadata], label: str) -> Metadata:
    """The shards of one model as one checkpoint: every parameter of every shard, shard by shard.

    `shards` maps each shard's path to its metadata; a shard the index names must be there.
    """
    missing = [shard for shard in index.shards if shard not in shards]
    if missing:
        raise ThetaError(f"{label}: shard {missing[0]} is missing")
    combined = union([shards[shard] for shard in index.shards], label)
    assert combined is not None
    return combined


def union(parts: Sequence[Metadata | None], label: str) -> Metadata | None:
    """Metadata with the parameters of every part (None where a shard is absent); None when all are absent.

    A parameter in two parts, or parts of different formats, is an error naming `label`.
    """
    present = [m for m in parts if m is not None]
    if not present:
        return None
    formats = {m.format for m in present}
    if len(formats) > 1:
        raise ThetaError(f"{label}: the shards are of different formats ({', '.join(sorted(formats))})")
    parameters: dict[str, Parameter] = {}
    for metadata in present:
        for name, param in metadata.parameters.items():
            if name in parameters:
                raise ThetaError(f"{label}: parameter {name!r} is in two shards")
            parameters[name] = param
    return Metadata(
        theta=METADATA_VERSION,
        format=present[0].format,
        format_plugin=present[0].format_plugin,
        skeleton=None,
        parameters=parameters,
    )
