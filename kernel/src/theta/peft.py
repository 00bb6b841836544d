"""PEFT LoRA adapters, as PEFT writes them, turned into the low-rank factors of each weight's change.

PEFT saves `adapter_model.safetensors` with keys `base_model.model.<module>.lora_A.weight`
(r x in) and `...lora_B.weight` (out x r), and `adapter_config.json` with `r` and
`lora_alpha`; merging adds `scaling * B @ A` to `<module>.weight`, with scaling
`lora_alpha / r` (`lora_alpha / sqrt(r)` with `use_rslora`; `rank_pattern` and
`alpha_pattern` override both per module). GPT-2's Conv1D layers keep their weight as
in x out (`fan_in_fan_out`), so there the change is the transpose. Embeddings use
`lora_embedding_A` / `lora_embedding_B` and the transposed change too.

What comes out is what the low-rank update type reads: `lora_b` (rows x r, scaling included)
and `lora_a` (r x cols), with `lora_b @ lora_a` the change of the weight as it is stored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from attrs import field, frozen

from theta import bits
from theta.errors import ThetaError
from theta.tensors import Tensor

PREFIX = "base_model.model."
CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# factor key suffix -> (factor, is an embedding)
FACTORS = {
    ".lora_A.weight": ("A", False),
    ".lora_B.weight": ("B", False),
    ".lora_embedding_A": ("A", True),
    ".lora_embedding_B": ("B", True),
}


@frozen(kw_only=True)
class LoraConfig:
    source: Path
    r: int
    lora_alpha: float
    use_rslora: bool = False
    fan_in_fan_out: bool = False
    rank_pattern: Mapping[str, int] = field(factory=dict)
    alpha_pattern: Mapping[str, float] = field(factory=dict)

    def scaling(self, module: str) -> float:
        r = _by_pattern(self.rank_pattern, module, self.r)
        alpha = _by_pattern(self.alpha_pattern, module, self.lora_alpha)
        return alpha / math.sqrt(r) if self.use_rslora else alpha / r


def _by_pattern(patterns: Mapping[str, Any], module: str, default: Any) -> Any:
    """PEFT's rule: a pattern applies to a module whose name ends with it, at a name boundary."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return value
    return default


def read_config(path: Path) -> LoraConfig:
    if not path.is_file():
        raise ThetaError(
            f"{path} does not exist: a PEFT adapter's factors need its adapter_config.json (r, lora_alpha) beside them"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ThetaError(f"{path}: not a JSON file: {exc}") from None
    if not isinstance(raw, dict):
        raise ThetaError(f"{path}: expected a JSON object")
    if raw.get("peft_type", "LORA") != "LORA":
        raise ThetaError(f"{path}: peft_type {raw.get('peft_type')!r}: only LoRA adapters give low-rank update data")
    if raw.get("use_dora"):
        raise ThetaError(f"{path}: use_dora: a DoRA adapter's change is not low-rank; merge it and add the checkpoint")

    def number(key: str, kind: type) -> Any:
        value = raw.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ThetaError(f"{path}: {key}: expected a positive number, got {value!r}")
        return kind(value)

    def table(key: str) -> dict[str, Any]:
        value = raw.get(key) or {}
        if not isinstance(value, dict):
            raise ThetaError(f"{path}: {key}: expected an object of module patterns")
        return value

    return LoraConfig(
        source=path,
        r=number("r", int),
        lora_alpha=number("lora_alpha", float),
        use_rslora=bool(raw.get("use_rslora", False)),
        fan_in_fan_out=bool(raw.get("fan_in_fan_out", False)),
        rank_pattern=table("rank_pattern"),
        alpha_pattern=table("alpha_pattern"),
    )


def _split(key: str) -> tuple[str, str, bool] | None:
    """(module, factor, is an embedding) of a PEFT factor key, or None for any other key."""
    for suffix, (factor, embedding) in FACTORS.items():
        if key.endswith(suffix):
            return key[len(PREFIX) : -len(suffix)], factor, embedding
    return None


def _values(tensor: Tensor, key: str, weights: Path) -> np.ndarray:
    if tensor.dtype not in bits.FLOATS or len(tensor.shape) != 2:
        raise ThetaError(f"{weights}: {key}: expected a 2-D float factor, got {tensor.dtype} {list(tensor.shape)}")
    return bits.to_values(bits.raw_bits(tensor), tensor.dtype).reshape(tensor.shape).astype(np.float32)


def factors(
    config: LoraConfig, tensors: Mapping[str, Tensor], weights: Path
) -> dict[str, dict[str, tuple[Tensor, str]]]:
    """`<module>.weight` -> {"lora_a": (tensor, key), "lora_b": (tensor, key)} for every adapted module.

    A key that is not a LoRA factor, or a module with only one of its two factors, is an error
    naming it: nothing in an adapter is silently left out.
    """
    modules: dict[str, dict[str, tuple[np.ndarray, str, bool]]] = {}
    for key, tensor in tensors.items():
        found = _split(key) if key.startswith(PREFIX) else None
        if found is None:
            raise ThetaError(
                f"{weights}: key {key!r} is not a LoRA factor (`{PREFIX}<module>.lora_A.weight` or `.lora_B.weight`);"
                " an adapter with other weights (modules_to_save, DoRA) cannot be side-loaded: merge it and add the"
                " checkpoint instead"
            )
        module, factor, embedding = found
        modules.setdefault(module, {})[factor] = (_values(tensor, key, weights), key, embedding)
    result: dict[str, dict[str, tuple[Tensor, str]]] = {}
    for module, pair in modules.items():
        if set(pair) != {"A", "B"}:
            (_, key, _), missing = next(iter(pair.values())), "B" if "A" in pair else "A"
            raise ThetaError(f"{weights}: {key!r} has no lora_{missing} to go with it")
        (a, a_key, embedding), (b, _, _) = pair["A"], pair["B"]
        if a.shape[0] != b.shape[1]:
            raise ThetaError(f"{weights}: {a_key!r}: factors of {list(b.shape)} @ {list(a.shape)} do not multiply")
        scale = np.float32(config.scaling(module))
        if embedding or config.fan_in_fan_out:  # the weight is stored transposed: its change is (B @ A).T
            lora_b, lora_a = a.T * scale, b.T
        else:
            lora_b, lora_a = b * scale, a
        result[f"{module}.weight"] = {
            "lora_a": (Tensor.from_numpy(np.ascontiguousarray(lora_a, dtype=np.float32)), a_key),
            "lora_b": (Tensor.from_numpy(np.ascontiguousarray(lora_b, dtype=np.float32)), a_key),
        }
    return result
