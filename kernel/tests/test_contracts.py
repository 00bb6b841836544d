"""The contract classes fail plugins that are wrong or check nothing, and pass one that is right.

Each contract test method is called directly on a contract subclass whose plugin is an
inline bad one: an update type that declines everything, one that is not exact, one that is
not deterministic, a format that reads no parameter.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest
from attrs import frozen

from theta.formats import Checkpoint, CheckpointFormat, Layout, Source, TensorInfo
from theta.tensors import Tensor
from theta.testing import Change, FormatContract, UpdateTypeContract
from theta.testing.reporting import DECLINED
from theta.testing.samples import in_dtype
from theta.updates import Update, UpdateType

Side = Mapping[str, Tensor] | None


def xor(a: Tensor, b: Tensor) -> Tensor:
    x, y = np.frombuffer(bytes(a.data), np.uint8), np.frombuffer(bytes(b.data), np.uint8)
    return Tensor(dtype="uint8", shape=(a.nbytes,), data=(x ^ y).tobytes())


@frozen
class XorUpdate(UpdateType):
    """Exact: the bits that differ from the base."""

    name = "xor"

    def encode(self, tensor: Tensor, base: Tensor | None, side_data: Side = None) -> Update | None:
        if base is None or not base.same_layout(tensor):
            return None
        return Update(arrays={"flips": xor(tensor, base)})

    def decode(self, update: Update, base: Tensor | None, info: TensorInfo) -> Tensor:
        assert base is not None
        return Tensor(dtype=info.dtype, shape=info.shape, data=bytes(xor(update.arrays["flips"], base).data))


@frozen
class DecliningUpdate(XorUpdate):
    name = "declines-everything"

    def encode(self, tensor: Tensor, base: Tensor | None, side_data: Side = None) -> Update | None:
        return None


@frozen
class InexactUpdate(XorUpdate):
    """Gets the lowest bit of the first byte wrong."""

    name = "inexact"

    def encode(self, tensor: Tensor, base: Tensor | None, side_data: Side = None) -> Update | None:
        update = super().encode(tensor, base, side_data)
        if update is None:
            return None
        flips = bytearray(update.arrays["flips"].data)
        flips[0] ^= 0x01
        return Update(arrays={"flips": Tensor(dtype="uint8", shape=(len(flips),), data=bytes(flips))})


@frozen
class RestlessUpdate(XorUpdate):
    """Exact, but each encoding carries a different counter."""

    name = "restless"

    def encode(self, tensor: Tensor, base: Tensor | None, side_data: Side = None) -> Update | None:
        update = super().encode(tensor, base, side_data)
        counter = next(COUNTER)
        return None if update is None else Update(arrays=update.arrays, params={"encoded": counter})


def counter() -> Iterator[int]:
    n = 0
    while True:
        n += 1
        yield n


COUNTER = counter()


class XorContract(UpdateTypeContract):
    update_type_name = "xor"

    def friendly_changes(self) -> Iterator[Change]:
        base = np.random.default_rng(0).standard_normal((16, 8))
        for dtype in ("float32", "float16", "bfloat16"):
            new = base.copy()
            new[3, 4] += 1
            yield Change(label=f"one {dtype} element", tensor=in_dtype(new, dtype), base=in_dtype(base, dtype))


UPDATE_CHECKS = ["test_friendly_changes_are_encoded_exactly", "test_every_dtype_round_trips_exactly",
                 "test_special_values_round_trip_exactly"]  # fmt: skip


def run(contract: object, method: str, **fixtures: Any) -> None:
    """Call one contract test with the fixtures it names, as pytest would."""
    test = getattr(contract, method)
    recorded: list[tuple[str, Any]] = []
    available: dict[str, Any] = {"record_property": lambda k, v: recorded.append((k, v)), **fixtures}
    test(**{name: available[name] for name in inspect.signature(test).parameters})


@pytest.mark.parametrize("method", [m for m in dir(UpdateTypeContract) if m.startswith("test_")])
def test_an_exact_update_type_passes(method: str) -> None:
    run(XorContract(), method, update_type=XorUpdate())


@pytest.mark.parametrize("method", UPDATE_CHECKS)
def test_an_update_type_that_declines_everything_fails(method: str) -> None:
    with pytest.raises(AssertionError, match="declined"):
        run(XorContract(), method, update_type=DecliningUpdate())


@pytest.mark.parametrize("method", UPDATE_CHECKS)
def test_an_inexact_update_type_fails(method: str) -> None:
    with pytest.raises(AssertionError, match="not exact"):
        run(XorContract(), method, update_type=InexactUpdate())


def test_a_non_deterministic_update_type_fails() -> None:
    with pytest.raises(AssertionError, match="not deterministic"):
        run(XorContract(), "test_friendly_changes_are_encoded_exactly", update_type=RestlessUpdate())


def test_a_contract_without_friendly_changes_fails() -> None:
    class Empty(XorContract):
        def friendly_changes(self) -> Iterator[Change]:
            return iter(())

    with pytest.raises(AssertionError, match="gave no change"):
        run(Empty(), "test_friendly_changes_are_encoded_exactly", update_type=XorUpdate())


@frozen
class ReadsNothing(CheckpointFormat):
    """Takes the whole file as its skeleton and finds no parameter in it."""

    name = "nothing"
    extensions = (".nothing",)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"NOTHING")

    def read(self, source: Source) -> Checkpoint:
        return Checkpoint(skeleton=source.read_rest(), parameters=iter(()))

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        sink.write(layout.skeleton)


class NothingContract(FormatContract):
    format_name = "nothing"

    def samples(self, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
        yield "model.nothing", b"NOTHING" + bytes(range(256)) * 4


@pytest.mark.parametrize("method", ["test_round_trip", "test_read_is_deterministic", "test_changed_tensor_is_written"])
def test_a_format_that_reads_no_parameter_fails(method: str, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="no parameters read"):
        run(NothingContract(), method, fmt=ReadsNothing(), tmp_path=tmp_path)


@pytest.mark.parametrize("method", ["test_sniffs_its_samples", "test_round_trip", "test_read_is_deterministic"])
def test_a_format_contract_without_samples_fails(method: str, tmp_path: Path) -> None:
    class NoSamples(NothingContract):
        def samples(self, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
            return iter(())

    with pytest.raises(AssertionError, match="gave no checkpoint"):
        run(NoSamples(), method, fmt=ReadsNothing(), tmp_path=tmp_path)


def test_declined_samples_are_recorded() -> None:
    recorded: list[tuple[str, Any]] = []
    one = np.arange(6, dtype=np.float32)
    changes = [
        Change(label="one element", tensor=Tensor.from_numpy(one + (one == 2)), base=Tensor.from_numpy(one)),
        Change(label="a base of another shape", tensor=Tensor.from_numpy(one), base=Tensor.from_numpy(one[:5])),
    ]
    declined = XorContract().check_samples(XorUpdate(), changes, lambda k, v: recorded.append((k, v)))
    assert declined == ["a base of another shape"]
    assert recorded == [(DECLINED, "xor declined 1 of 2: a base of another shape")]
