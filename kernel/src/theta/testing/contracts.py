"""Contract test classes: the checks every plugin of a kind passes. A plugin's tests subclass the
contract of its kind and say what it is made for; the contract fails a plugin that checks
nothing (a format that reads no parameter, an update type that declines every change).

- `FormatContract` for checkpoint formats,
- `UpdateTypeContract` for update types.

The contracts for merge strategies and diff renderers belong here too, beside these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
import pytest

from theta.errors import FormatError, ThetaError
from theta.formats import SNIFF_BYTES, CheckpointFormat, TensorInfo
from theta.plugins import PluginManager
from theta.tensors import Tensor
from theta.testing.checkpoints import read_checkpoint, write_checkpoint
from theta.testing.reporting import DECLINED
from theta.testing.samples import Change, dtype_changes, special_value_changes, with_special_values
from theta.updates import Update, UpdateType

# ---- checkpoint formats ---------------------------------------------------------------------


class FormatContract:
    """The checks every format plugin passes. Subclass it in the plugin's tests and set:

    - `format_name`: the registered name;
    - `samples(tmp_path)`: yields (file name, bytes) of real checkpoints written by the framework;
    - `other_format_sample(tmp_path)`: bytes of a checkpoint of another format (optional).

    Every sample must give at least one parameter: a format that reads none fails.
    Override `assert_equivalent(original, rebuilt)` where a byte-identical rewrite is not
    possible (and say so in the plugin's README).
    """

    format_name: ClassVar[str]

    def samples(self, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
        raise NotImplementedError

    def other_format_sample(self, tmp_path: Path) -> bytes | None:
        return None

    def assert_equivalent(self, original: bytes, rebuilt: bytes) -> None:
        assert rebuilt == original

    def given_samples(self, tmp_path: Path) -> list[tuple[str, bytes]]:
        """The samples; none at all would let every check pass without reading a file."""
        found = list(self.samples(tmp_path))
        assert found, f"{type(self).__name__}.samples gave no checkpoint: the contract would check nothing"
        return found

    def read_sample(self, fmt: CheckpointFormat, name: str, data: bytes) -> tuple[bytes, dict[str, Tensor]]:
        skeleton, tensors = read_checkpoint(fmt, data, name)
        assert tensors, f"{name}: no parameters read"
        return skeleton, tensors

    @pytest.fixture
    def fmt(self, theta_plugins: PluginManager) -> CheckpointFormat:
        return theta_plugins.registry.format(self.format_name)

    def test_registered_with_extensions(self, fmt: CheckpointFormat) -> None:
        assert fmt.name == self.format_name
        assert all(ext.startswith(".") and ext == ext.lower() for ext in fmt.extensions)

    def test_sniffs_its_samples(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        for name, data in self.given_samples(tmp_path):
            assert fmt.sniff(data[:SNIFF_BYTES]), name

    def test_round_trip(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        for name, data in self.given_samples(tmp_path):
            skeleton, tensors = self.read_sample(fmt, name, data)
            self.assert_equivalent(data, write_checkpoint(fmt, skeleton, tensors))

    def test_read_is_deterministic(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        for name, data in self.given_samples(tmp_path):
            first = self.read_sample(fmt, name, data)
            second = self.read_sample(fmt, name, data)
            assert first[0] == second[0]
            assert {k: v.sha256() for k, v in first[1].items()} == {k: v.sha256() for k, v in second[1].items()}

    def test_changed_tensor_is_written(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        name, data = self.given_samples(tmp_path)[0]
        skeleton, tensors = self.read_sample(fmt, name, data)
        first = next((n for n, t in tensors.items() if t.nbytes), None)
        assert first is not None, f"{name}: every parameter read is empty"
        original = tensors[first]
        changed = bytearray(original.data)
        changed[0] ^= 0x01
        tensors[first] = Tensor(dtype=original.dtype, shape=original.shape, data=bytes(changed))
        rebuilt = write_checkpoint(fmt, skeleton, tensors)
        _, reread = read_checkpoint(fmt, rebuilt, name)
        assert bytes(reread[first].data) == bytes(changed)

    def test_truncated_file_is_a_clear_error(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        name, data = self.given_samples(tmp_path)[0]
        with pytest.raises(ThetaError, match=name):
            read_checkpoint(fmt, data[: len(data) * 2 // 3], name)

    def test_wrong_magic_is_rejected(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        name, data = self.given_samples(tmp_path)[0]
        garbage = b"\x00NOT-A-CHECKPOINT" + data[16:]
        assert not fmt.sniff(garbage[:SNIFF_BYTES])
        with pytest.raises(FormatError, match=name):
            read_checkpoint(fmt, garbage, name)

    def test_other_format_is_rejected(self, fmt: CheckpointFormat, tmp_path: Path) -> None:
        other = self.other_format_sample(tmp_path)
        if other is None:
            pytest.skip("no sample of another format given")
        assert not fmt.sniff(other[:SNIFF_BYTES])
        with pytest.raises(FormatError):
            read_checkpoint(fmt, other, "other" + (fmt.extensions[0] if fmt.extensions else ""))


# ---- update types -----------------------------------------------------------------------------


def _copy(tensor: Tensor) -> Tensor:
    return Tensor(dtype=tensor.dtype, shape=tensor.shape, data=bytes(tensor.data))


def _hashes(update: Update) -> dict[str, tuple[str, tuple[int, ...], str]]:
    return {k: (a.dtype, a.shape, a.sha256()) for k, a in update.arrays.items()}


def encode_exactly(kind: UpdateType, change: Change) -> Update | None:
    """Encode `change` with `kind`; None when it declines. An encoding must be exact the way the
    kernel uses it (arrays read back from objects, params back from JSON), deterministic, and
    leave its inputs as they were."""
    tensor, base, what = change.tensor, change.base, f"{kind.name} on {change.label}"
    before = (tensor.sha256(), base.sha256() if base is not None else None)
    update = kind.encode(tensor, base, change.side_data)
    if update is None:
        return None
    assert isinstance(update, Update), f"{what}: encode returned {update!r}, neither an Update nor None"
    assert all(isinstance(a, Tensor) for a in update.arrays.values()), f"{what}: an array is not a Tensor"
    try:
        params = json.loads(json.dumps(update.params))
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{what}: params are not JSON values ({exc}): {update.params!r}") from None
    stored = Update(arrays={k: _copy(a) for k, a in update.arrays.items()}, params=params)
    decoded = kind.decode(
        stored, _copy(base) if base is not None else None, TensorInfo(dtype=tensor.dtype, shape=tensor.shape)
    )
    assert decoded.same_layout(tensor), (
        f"{what}: decodes to {decoded.dtype} {list(decoded.shape)}, not {tensor.dtype} {list(tensor.shape)}"
    )
    assert decoded.sha256() == tensor.sha256(), f"{what}: not exact, decoding gives other bits"
    again = kind.encode(_copy(tensor), _copy(base) if base is not None else None, change.side_data)
    assert again is not None, f"{what}: not deterministic, encoding the same change again is declined"
    assert again.params == update.params and _hashes(again) == _hashes(update), f"{what}: not deterministic"
    after = (tensor.sha256(), base.sha256() if base is not None else None)
    assert after == before, f"{what}: encoding changed its input"
    return update


class UpdateTypeContract:
    """The checks every update type passes. Subclass it in the plugin's tests and set:

    - `update_type_name`: the registered name;
    - `friendly_changes()`: yields `Change`s this type is made for (a merged LoRA for
      low-rank, a scaled weight for ia3), in float32, float16 and bfloat16 where it handles them.

    Each friendly change must be encoded, exactly; on the contract's own samples (every common
    dtype, special values: NaN payloads, infinities, signed zeros, subnormals) the type may
    decline, but whatever it encodes must decode to the same bits, encoding must be
    deterministic, and declining all of them fails. Declined samples are listed in the test
    report (`theta.testing` prints them at the end of the run).
    """

    update_type_name: ClassVar[str]

    def friendly_changes(self) -> Iterable[Change]:
        raise NotImplementedError

    @pytest.fixture
    def update_type(self, theta_plugins: PluginManager) -> UpdateType:
        return theta_plugins.registry.update_type(self.update_type_name)

    def given_changes(self, kind: UpdateType) -> list[Change]:
        changes = [self._for(kind, c) for c in self.friendly_changes()]
        assert changes, f"{type(self).__name__}.friendly_changes gave no change: the contract would check nothing"
        return changes

    @staticmethod
    def _for(kind: UpdateType, change: Change) -> Change:
        """A type that stores whole tensors is given no base, as the kernel does."""
        return change if kind.needs_base else attrs.evolve(change, base=None)

    def check_samples(
        self, kind: UpdateType, changes: Iterable[Change], record_property: Callable[[str, Any], None]
    ) -> list[str]:
        """Every sample exact wherever encoded; at least one encoded. Returns the declined labels."""
        declined: list[str] = []
        total = 0
        for change in changes:
            total += 1
            if encode_exactly(kind, self._for(kind, change)) is None:
                declined.append(change.label)
        assert total, "no samples to check"
        assert len(declined) < total, f"{kind.name} declined every one of the {total} samples: it checked nothing"
        if declined:
            record_property(DECLINED, f"{kind.name} declined {len(declined)} of {total}: {'; '.join(declined)}")
        return declined

    def test_registered(self, update_type: UpdateType) -> None:
        assert update_type.name == self.update_type_name
        assert isinstance(update_type.needs_base, bool)
        assert update_type.cost in (1, 2, 3), f"cost {update_type.cost!r}: 1 (cheap) to 3 (costly)"

    def test_friendly_changes_are_encoded_exactly(self, update_type: UpdateType) -> None:
        declined = [c.label for c in self.given_changes(update_type) if encode_exactly(update_type, c) is None]
        assert not declined, f"{update_type.name} declined changes it is made for: {'; '.join(declined)}"

    def test_every_dtype_round_trips_exactly(
        self, update_type: UpdateType, record_property: Callable[[str, Any], None]
    ) -> None:
        self.check_samples(update_type, dtype_changes(), record_property)

    def test_special_values_round_trip_exactly(
        self, update_type: UpdateType, record_property: Callable[[str, Any], None]
    ) -> None:
        friendly = [with_special_values(c) for c in self.given_changes(update_type)]
        changes = [*special_value_changes(), *(c for c in friendly if c is not None)]
        self.check_samples(update_type, changes, record_property)

    def test_a_type_that_screens_itself_declines_a_full_fine_tune(self, update_type: UpdateType) -> None:
        """`screens_itself` spares a type the kernel's trial on sampled rows: its `encode` must then
        decline, by itself, a change it cannot store well, such as noise on every element."""
        if not update_type.screens_itself:
            pytest.skip(f"{update_type.name} is screened by the kernel on a sample of rows")
        rng = np.random.default_rng(11)
        base = rng.standard_normal((512, 256), dtype=np.float32) * np.float32(0.02)
        tuned = base + rng.standard_normal(base.shape, dtype=np.float32) * np.float32(0.0002)
        change = Change(label="a full fine-tune", tensor=Tensor.from_numpy(tuned), base=Tensor.from_numpy(base))
        assert encode_exactly(update_type, change) is None, (
            f"{update_type.name} sets screens_itself but encoded noise on every element"
        )

    def test_a_base_of_another_layout_is_declined_or_exact(self, update_type: UpdateType) -> None:
        if not update_type.needs_base:
            pytest.skip(f"{update_type.name} stores whole tensors: it takes no base")
        for change in self.given_changes(update_type):
            tensor = change.tensor
            others = [
                Tensor(dtype="uint8", shape=(tensor.nbytes,), data=bytes(tensor.data)),
                Tensor(dtype=tensor.dtype, shape=(*tensor.shape, 1), data=bytes(tensor.data)),
            ]
            for other in others:
                label = f"{change.label}, base {other.dtype} {list(other.shape)}"
                encode_exactly(update_type, Change(label=label, tensor=tensor, base=other, side_data=change.side_data))
