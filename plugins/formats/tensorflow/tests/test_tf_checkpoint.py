from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from theta.errors import FormatError
from theta.formats import SNIFF_BYTES
from theta.tensors import Tensor
from theta.testing import FormatContract, read_checkpoint, write_checkpoint
from theta_format_tensorflow import TFCheckpointFormat
from theta_format_tensorflow.tf_checkpoint import refresh_index

SHARD = "ckpt-1.data-00000-of-00001"
KERNEL = "model/_functional/_operations/4/_kernel/.ATTRIBUTES/VARIABLE_VALUE"


class TestTFCheckpointContract(FormatContract):
    """Samples are named by absolute path: the reader finds the `.index` beside the shard."""

    format_name = "tf-checkpoint"

    @pytest.fixture(autouse=True)
    def _files(self, tf_files: Any) -> None:
        self.files = tf_files

    def samples(self, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
        for kind in ("cnn", "transformer"):
            path = self.files.path(f"{kind}/{SHARD}")
            yield str(path), path.read_bytes()
        for shard in sorted(self.files.path("sharded").glob("ckpt-1.data-*")):
            yield str(shard), shard.read_bytes()

    def other_format_sample(self, tmp_path: Path) -> bytes:
        from safetensors.numpy import save

        return save({"w": np.ones((4, 4), np.float32)})

    def test_sniffs_its_samples(self, fmt: Any, tmp_path: Path) -> None:
        # A data shard is raw tensor bytes with no signature: it is chosen by name or attribute.
        for name, data in self.samples(tmp_path):
            assert not fmt.sniff(data[:SNIFF_BYTES]), name


def read_shard(path: Path) -> tuple[bytes, dict[str, Tensor]]:
    return read_checkpoint(TFCheckpointFormat(), path.read_bytes(), str(path))


def copy_checkpoint(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target / "ckpt-1"


def test_parameters_are_named_by_checkpoint_key_with_their_dtype(tf_files: Any) -> None:
    _, tensors = read_shard(tf_files.path(f"cnn/{SHARD}"))
    dtypes = {name.split("/")[0]: t.dtype for name, t in tensors.items() if not name.startswith("model/")}
    assert dtypes == {
        "brain": "bfloat16",
        "counts": "int32",
        "flag": "bool",
        "half": "float16",
        "save_counter": "int64",
        "step": "int64",
    }
    assert tensors[KERNEL].shape == (144, 5)
    assert np.array_equal(tensors["counts/.ATTRIBUTES/VARIABLE_VALUE"].numpy(), tf_files.checkpoints["cnn"]["counts"])
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" not in tensors


def test_sharded_checkpoint_splits_its_tensors_over_the_shards(tf_files: Any) -> None:
    shards = sorted(tf_files.path("sharded").glob("ckpt-1.data-*"))
    assert len(shards) > 1
    names: list[str] = []
    for shard in shards:
        names += read_shard(shard)[1]
    value = "/.ATTRIBUTES/VARIABLE_VALUE"
    slices = [n for n in names if n.startswith(("v1", "v2", "v3"))]
    assert sorted(set(names) - set(slices)) == [f"save_counter{value}", f"v0{value}"]
    for variable in ("v1", "v2", "v3"):  # partitioned by the sharding policy: named by their extents
        extents = sorted((int(n.split("[")[1].split(":")[0]), n) for n in slices if n.startswith(variable))
        assert extents[0][1].startswith(f"{variable}{value}[0:") and extents[-1][1].endswith(":64]")


def test_sharded_checkpoint_restores_after_a_rebuild(tf_files: Any, tmp_path: Path) -> None:
    prefix = copy_checkpoint(tf_files.path("sharded"), tmp_path / "ckpt")
    for shard in prefix.parent.glob("ckpt-1.data-*"):
        skeleton, tensors = read_shard(shard)
        shard.write_bytes(write_checkpoint(TFCheckpointFormat(), skeleton, tensors))
    assert tf_files.bits(tf_files.restore("sharded", prefix)) == tf_files.bits(tf_files.checkpoints["sharded"])


def test_rebuilt_checkpoint_restores_in_tensorflow(tf_files: Any, tmp_path: Path) -> None:
    prefix = copy_checkpoint(tf_files.path("cnn"), tmp_path / "ckpt")
    shard = prefix.with_name(SHARD)
    skeleton, tensors = read_shard(shard)
    shard.write_bytes(write_checkpoint(TFCheckpointFormat(), skeleton, tensors))
    restored = tf_files.restore("cnn", prefix)
    assert tf_files.bits(restored) == tf_files.bits(tf_files.checkpoints["cnn"])


def test_changed_tensors_restore_after_the_index_is_refreshed(tf_files: Any, tmp_path: Path) -> None:
    prefix = copy_checkpoint(tf_files.path("cnn"), tmp_path / "ckpt")
    shard = prefix.with_name(SHARD)
    skeleton, tensors = read_shard(shard)
    kernel = tensors[KERNEL].numpy().copy()
    kernel[:3] = -1.25
    tensors[KERNEL] = Tensor.from_numpy(kernel)
    brain = bytearray(tensors["brain/.ATTRIBUTES/VARIABLE_VALUE"].data)
    brain[0:2] = b"\x80\x40"  # bfloat16 4.0
    tensors["brain/.ATTRIBUTES/VARIABLE_VALUE"] = Tensor(dtype="bfloat16", shape=(4,), data=bytes(brain))
    shard.write_bytes(write_checkpoint(TFCheckpointFormat(), skeleton, tensors))

    with pytest.raises(Exception, match=r"(?i)checksum|crc|data loss"):
        tf_files.restore("cnn", prefix)
    assert sorted(refresh_index(prefix.with_name("ckpt-1.index"))) == [
        "brain/.ATTRIBUTES/VARIABLE_VALUE",
        KERNEL,
    ]
    restored = tf_files.restore("cnn", prefix)
    assert np.array_equal(restored["model/6"], kernel)
    assert restored["brain"].tobytes()[:2] == b"\x80\x40"
    assert restored["step"] == tf_files.checkpoints["cnn"]["step"]


def test_changed_shape_is_a_clear_error(tf_files: Any) -> None:
    skeleton, tensors = read_shard(tf_files.path(f"cnn/{SHARD}"))
    tensors[KERNEL] = Tensor.from_numpy(np.zeros((144, 6), np.float32))
    with pytest.raises(FormatError, match=r"no longer match the shard's layout.*ckpt-1\.index"):
        write_checkpoint(TFCheckpointFormat(), skeleton, tensors)


def test_missing_index_is_a_clear_error(tf_files: Any, tmp_path: Path) -> None:
    shard = tmp_path / SHARD
    shutil.copy(tf_files.path(f"cnn/{SHARD}"), shard)
    with pytest.raises(
        FormatError, match=r"ckpt-1\.data-00000-of-00001: the checkpoint index ckpt-1\.index is not beside"
    ):
        read_shard(shard)


def test_index_of_another_save_is_rejected(tf_files: Any, tmp_path: Path) -> None:
    shard = tmp_path / SHARD
    shutil.copy(tf_files.path(f"cnn/{SHARD}"), shard)
    shutil.copy(tf_files.path("transformer/ckpt-1.index"), tmp_path / "ckpt-1.index")
    with pytest.raises(FormatError, match=str(shard)):
        read_shard(shard)


def test_shard_that_differs_from_its_index_is_rejected(tf_files: Any, tmp_path: Path) -> None:
    prefix = copy_checkpoint(tf_files.path("cnn"), tmp_path / "ckpt")
    shard = prefix.with_name(SHARD)
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # inside the object graph, the last entry of the shard
    shard.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"'_CHECKPOINTABLE_OBJECT_GRAPH' does not match the CRC in ckpt-1\.index"):
        read_shard(shard)


def test_changed_values_with_a_stale_index_are_read_by_position(tf_files: Any, tmp_path: Path) -> None:
    prefix = copy_checkpoint(tf_files.path("cnn"), tmp_path / "ckpt")
    shard = prefix.with_name(SHARD)
    skeleton, tensors = read_shard(shard)
    tensors["step/.ATTRIBUTES/VARIABLE_VALUE"] = Tensor.from_numpy(np.array(41, dtype=np.int64))
    shard.write_bytes(write_checkpoint(TFCheckpointFormat(), skeleton, tensors))
    again, reread = read_shard(shard)
    assert again == skeleton
    assert int(reread["step/.ATTRIBUTES/VARIABLE_VALUE"].numpy()) == 41


def test_truncated_index_is_a_clear_error(tf_files: Any, tmp_path: Path) -> None:
    prefix = copy_checkpoint(tf_files.path("cnn"), tmp_path / "ckpt")
    index = prefix.with_name("ckpt-1.index")
    index.write_bytes(index.read_bytes()[:-20])
    with pytest.raises(FormatError, match=r"ckpt-1\.index: not a TensorFlow checkpoint index"):
        read_shard(prefix.with_name(SHARD))


def test_index_is_not_a_data_shard(tf_files: Any) -> None:
    index = tf_files.path("cnn/ckpt-1.index")
    with pytest.raises(FormatError, match="Track the data shard, not the index"):
        read_checkpoint(TFCheckpointFormat(), index.read_bytes(), str(index))


def test_refresh_index_command(tf_files: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from theta_format_tensorflow.refresh_index import main

    prefix = copy_checkpoint(tf_files.path("transformer"), tmp_path / "ckpt")
    index = prefix.with_name("ckpt-1.index")
    before = index.read_bytes()
    assert main([str(index)]) == 0
    assert index.read_bytes() == before  # nothing changed: the index is left as it was
    assert "0 tensor CRC(s) updated" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.index")]) == 1
