"""Every installed format's parser, fed mutations of a real checkpoint and the hostile corpus.

A parser may accept its input or refuse it with a `ThetaError`; anything else (another
exception, a hang) is a defect.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fuzz.budget import examples
from fuzz.hostile import CORPUS
from hypothesis import given, settings
from hypothesis import strategies as st

from theta.errors import ThetaError
from theta.plugins import default_manager
from theta.testing import read_checkpoint

# format name -> (seed file, the name the file is read under)
SEEDS = {
    "safetensors": "seed.safetensors",
    "pytorch": "seed.pt",
    "onnx": "seed.onnx",
    "keras": "seed.keras",
    "keras-h5": "seed.weights.h5",
}
REGISTRY = default_manager().registry
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# A mutation is a short recipe (so that a failing example prints as a few numbers): each
# step is (kind, position as a share of the file, argument).
KINDS = ("flip", "set", "insert", "delete", "truncate", "int")
BIG = (b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\0\0\0\x80")
recipes = st.lists(
    st.tuples(st.sampled_from(KINDS), st.floats(0, 1, allow_nan=False), st.integers(0, 255)), min_size=1, max_size=4
)


def mutate(seed: bytes, recipe: list[tuple[str, float, int]]) -> bytes:
    """`seed` with a few flipped, overwritten, inserted or deleted bytes, a large length, or cut short."""
    data = bytearray(seed)
    for kind, where, arg in recipe:
        at = min(int(where * len(data)), max(0, len(data) - 1))
        if kind == "flip" and data:
            data[at] ^= 1 << (arg % 8)
        elif kind == "set" and data:
            data[at] = arg
        elif kind == "insert":
            data[at:at] = bytes([arg]) * (1 + arg % 16)
        elif kind == "delete":
            del data[at : at + 1 + arg % 16]
        elif kind == "truncate":
            del data[at:]
        elif kind == "int" and len(data) >= at + 4:  # a length or offset field claiming something large
            data[at : at + 4] = BIG[arg % len(BIG)]
    return bytes(data)


def parse(format_name: str, data: bytes, name: str) -> None:
    """Read `data`; a refusal must be a one-line `ThetaError`, anything else fails with a short message."""
    fmt = REGISTRY.format(format_name)
    try:
        read_checkpoint(fmt, data, name)
    except ThetaError as exc:
        assert "\n" not in str(exc).strip(), str(exc)
    except Exception as exc:  # the defect this test is for: report it briefly
        raise AssertionError(f"{format_name} parser raised {type(exc).__name__}: {str(exc)[:300]}") from None


def seed(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


@pytest.mark.parametrize("format_name", sorted(SEEDS))
def test_seed_is_read(format_name: str) -> None:
    _, tensors = read_checkpoint(REGISTRY.format(format_name), seed(SEEDS[format_name]), SEEDS[format_name])
    assert tensors


MUTATED = sorted(SEEDS)


@pytest.mark.parametrize("format_name", MUTATED)
def test_mutated_checkpoints_are_read_or_refused(format_name: str) -> None:
    name = SEEDS[format_name]

    @settings(max_examples=examples(120))
    @given(recipes)
    def check(recipe: list[tuple[str, float, int]]) -> None:
        parse(format_name, mutate(seed(name), recipe), name)

    check()


@pytest.mark.parametrize("format_name", sorted(SEEDS))
def test_random_bytes_after_a_valid_start_are_refused(format_name: str) -> None:
    name = SEEDS[format_name]
    head = seed(name)[:64]

    @settings(max_examples=examples(40))
    @given(st.binary(max_size=512))
    def check(tail: bytes) -> None:
        parse(format_name, head + tail, name)

    check()


def test_third_party_npz_parser() -> None:
    """The example plugin (examples/theta-format-npz) is not installed here: its format is used directly."""
    sys.path.insert(0, str(EXAMPLES / "theta-format-npz" / "src"))
    try:
        from theta_format_npz.format import NpzFormat
    finally:
        sys.path.pop(0)
    fmt = NpzFormat()
    assert read_checkpoint(fmt, seed("seed.npz"), "seed.npz")[1]

    @settings(max_examples=examples(120))
    @given(recipes)
    def check(recipe: list[tuple[str, float, int]]) -> None:
        try:
            read_checkpoint(fmt, mutate(seed("seed.npz"), recipe), "seed.npz")
        except ThetaError:
            pass
        except Exception as exc:
            raise AssertionError(f"npz parser raised {type(exc).__name__}: {str(exc)[:300]}") from None

    check()


def test_tf_checkpoint_index_parser() -> None:
    from theta_format_tensorflow.tf_index import parse_index

    parse_index(seed("seed-tf.index"), "seed-tf.index")

    @settings(max_examples=examples(150))
    @given(recipes)
    def check(recipe: list[tuple[str, float, int]]) -> None:
        try:
            parse_index(mutate(seed("seed-tf.index"), recipe), "ckpt.index")
        except ThetaError:
            pass
        except Exception as exc:
            raise AssertionError(f"tf-checkpoint index parser raised {type(exc).__name__}: {str(exc)[:300]}") from None

    check()


HOSTILE = {
    "safetensors-claims-4GiB.safetensors": "safetensors",
    "safetensors-header-claims-100MiB.safetensors": "safetensors",
    "safetensors-deep-header.safetensors": "safetensors",
    "torch-build-on-placeholder.pt": "pytorch",
    "torch-deflate-bomb-64MiB.pt": "pytorch",
    "keras-offset-before-start.keras": "keras",
    "keras-h5-name-not-utf8.weights.h5": "keras-h5",
    "keras-unknown-zip-version.keras": "keras",
}


@pytest.mark.parametrize("file", sorted(HOSTILE))
def test_hostile_corpus_is_refused(file: str) -> None:
    with pytest.raises(ThetaError) as refused:
        read_checkpoint(REGISTRY.format(HOSTILE[file]), seed(file), file)
    assert file in str(refused.value) and "\n" not in str(refused.value)


def test_every_installed_format_is_fuzzed() -> None:
    missing = set(REGISTRY.formats) - {*SEEDS, "tf-checkpoint"}
    assert not missing, f"formats without a fuzz seed: {sorted(missing)}"
