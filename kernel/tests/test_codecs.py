"""Dense tensors stored zstd-grouped: exact, deterministic, shared, refused when damaged; a chain
must pay for itself; the threaded clean writes what a serial one writes."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from theta.checkpoints import Cleaner, CleanSettings, Smudger
from theta.errors import ObjectCorrupt, ThetaError
from theta.formats import open_source
from theta.metadata import dumps, loads
from theta.plugins import default_manager
from theta.store import codecs
from theta.store.objects import ObjectStore
from theta.store.parameters import ParameterStore
from theta.tensors import Tensor

SPECS = Path(__file__).resolve().parents[2] / "specs"


def weights(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.02).astype(np.float32)


def as_dtype(values: np.ndarray, name: str) -> Tensor:
    if name == "bfloat16":
        return Tensor.from_numpy((values.view(np.uint32) >> 16).astype(np.uint16), dtype_name="bfloat16")
    return Tensor.from_numpy(values.astype(name))


@pytest.mark.parametrize("name", ["float32", "bfloat16", "float16", "float64"])
@pytest.mark.parametrize("numel", [1 << 10, (3 << 20) + 7])
def test_round_trip_is_bit_exact_and_smaller(name: str, numel: int) -> None:
    tensor = as_dtype(weights((numel,)), name)
    codec, stored = codecs.encode_dense(tensor.data, tensor.nbytes // tensor.numel)
    assert codec == codecs.GROUPED and len(stored) < 0.9 * tensor.nbytes
    back = codecs.decode(codec, bytes(stored), tensor.nbytes, tensor.nbytes // tensor.numel)
    assert bytes(back) == bytes(tensor.data)


def test_deterministic_and_incompressible_data_stays_raw() -> None:
    data = as_dtype(weights((1 << 20,)), "float32").data
    assert bytes(codecs.encode_dense(data, 4)[1]) == bytes(codecs.encode_dense(bytes(data), 4)[1])
    noise = np.random.default_rng(1).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    assert codecs.encode_dense(noise, 1)[0] == "raw"


@pytest.mark.parametrize("name", ["float32", "bfloat16"])
def test_the_estimate_of_a_dense_tensor_is_close_to_what_it_stores(name: str) -> None:
    # rows of weights at scales from 0.002 to 0.2: the estimate's two slices see some of them
    scales = np.geomspace(0.1, 10, 2048, dtype=np.float32)[np.random.default_rng(2).permutation(2048)]
    tensor = as_dtype((weights((2048, 1024)) * scales[:, None]).astype(np.float32), name)
    itemsize = tensor.nbytes // tensor.numel
    stored = len(codecs.encode_dense(tensor.data, itemsize)[1])
    assert abs(codecs.dense_estimate(tensor.data, itemsize) - stored) <= 0.03 * stored


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"XXXX" + b[4:],  # magic
        lambda b: b[:4] + (3).to_bytes(4, "little") + b[8:],  # block size not whole elements
        lambda b: b[:-1],  # frames shorter than the index says
        lambda b: b[: 12 + 4 * 4] + bytes(4) + b[12 + 4 * 4 + 4 :],  # a frame without its zstd magic
    ],
)
def test_a_damaged_object_is_refused(damage) -> None:
    data = as_dtype(weights((1 << 16,)), "float32").data
    _, stored = codecs.encode_dense(data, 4)
    with pytest.raises(ThetaError, match="zstd-grouped"):
        codecs.decode(codecs.GROUPED, damage(bytes(stored)), len(data), 4)


def test_spec_example_object_decodes_to_its_hash() -> None:
    metadata = loads((SPECS / "metadata/v1/valid/compressed-dense.json").read_bytes(), "compressed-dense.json")
    (param,) = metadata.parameters.values()
    record = param.steps[0].objects["value"]
    stored = (SPECS / "objects/v1/examples" / record.oid).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == record.oid and len(stored) == record.size
    raw = codecs.decode(record.codec, stored, 64 * 64 * 2, 2)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == param.hash


# -- through the clean and smudge ---------------------------------------------------------------


def safetensors(tensors: dict[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    return save(tensors)


def setup(tmp_path: Path, workers: int | None = None) -> tuple[Cleaner, Smudger, ObjectStore]:
    registry = default_manager().registry
    store = ObjectStore(tmp_path / "lfs")
    params = ParameterStore(store, registry)
    return Cleaner(registry, params, workers=workers), Smudger(registry, params, None), store


def clean(cleaner: Cleaner, data: bytes, previous: list, settings: CleanSettings | None = None):
    registry = default_manager().registry
    with open_source("model.safetensors", io.BytesIO(data)) as source:
        return cleaner.clean(source, registry.format("safetensors"), previous, settings or CleanSettings())


def smudge(smudger: Smudger, metadata) -> bytes:
    out = io.BytesIO()
    smudger.smudge(metadata, "model.safetensors", out)
    return out.getvalue()


def test_equal_tensors_share_one_object_and_check_out_exactly(tmp_path: Path) -> None:
    cleaner, smudger, store = setup(tmp_path)
    w = weights((512, 512))
    data = safetensors({"a": w, "b": w.copy(), "c": weights((512, 512), 1)})
    metadata = clean(cleaner, data, [])
    records = {n: p.steps[0].objects["value"] for n, p in metadata.parameters.items()}
    assert {r.codec for r in records.values()} == {codecs.GROUPED}
    assert records["a"].oid == records["b"].oid != records["c"].oid
    assert len(list(store.objects_dir.glob("??/??/*"))) == 3  # two tensors and the skeleton
    assert smudge(smudger, metadata) == data
    assert clean(cleaner, data, [metadata]) == metadata  # unchanged: every entry reused


def test_a_damaged_compressed_object_is_refused_at_checkout(tmp_path: Path) -> None:
    cleaner, smudger, store = setup(tmp_path)
    metadata = clean(cleaner, safetensors({"w": weights((512, 512))}), [])
    oid = metadata.parameters["w"].steps[0].objects["value"].oid
    path = store.path(oid)
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(damaged))
    with pytest.raises(ObjectCorrupt):
        smudge(smudger, metadata)
    assert not store.has(oid)  # removed, so that a fetch can bring a good copy


def test_a_cut_short_compressed_object_is_refused_and_removed(tmp_path: Path) -> None:
    cleaner, _, store = setup(tmp_path)
    metadata = clean(cleaner, safetensors({"w": weights((512, 512))}), [])
    param = metadata.parameters["w"]
    oid = param.steps[0].objects["value"].oid
    path = store.path(oid)
    cut = path.read_bytes()[:-100]
    path.chmod(0o644)
    path.write_bytes(cut)
    with pytest.raises(ObjectCorrupt, match=r"model\.safetensors: parameter 'w'"):
        ParameterStore(store, default_manager().registry).load(param, "model.safetensors", "w")
    assert not store.has(oid)


def test_a_chain_pays_for_itself(tmp_path: Path) -> None:
    cleaner, smudger, _ = setup(tmp_path)
    v1 = {"w": weights((1024, 512)), "u": weights((1024, 512), 2)}
    first = clean(cleaner, safetensors(v1), [])
    rng = np.random.default_rng(5)
    v2 = {
        "w": v1["w"] + np.float32(0.01 * 0.02) * rng.standard_normal(v1["w"].shape, dtype=np.float32),  # noise
        "u": v1["u"].copy(),
    }
    v2["u"].reshape(-1)[::500] += 1.0  # a few values: an update pays
    data = safetensors(v2)
    second = clean(cleaner, data, [first])
    assert [s.update for s in second.parameters["w"].steps] == ["dense"]  # the update would not pay
    assert [s.update for s in second.parameters["u"].steps] == ["dense", "sparse"]
    assert smudge(smudger, second) == data
    # a chain may not grow past the tensor's size: a long chain of small changes starts again whole
    versions, current = [second], v2
    for i in range(12):
        current = {k: v.copy() for k, v in current.items()}
        current["u"].reshape(-1)[i::97] += 0.5
        versions.append(clean(cleaner, safetensors(current), [versions[-1]]))
    for metadata in versions:
        steps = metadata.parameters["u"].steps
        total = sum(r.size for s in steps for r in s.objects.values())
        assert total <= v1["u"].nbytes
    assert any(len(m.parameters["u"].steps) == 1 for m in versions[2:])


def test_threaded_clean_writes_what_a_serial_clean_writes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    v1 = {f"t{i}": weights((256 + 32 * i, 384), i) for i in range(12)}
    v2 = {k: (v + np.float32(0.001) if i % 3 == 0 else v) for i, (k, v) in enumerate(v1.items())}
    v2["t1"] = v1["t1"] * (1 + 0.1 * rng.standard_normal(v1["t1"].shape[0]).astype(np.float32))[:, None]
    results = []
    for workers in (1, 2):
        cleaner, smudger, _ = setup(tmp_path / f"w{workers}", workers=workers)
        first = clean(cleaner, safetensors(v1), [])
        second = clean(cleaner, safetensors(v2), [first])
        assert smudge(smudger, second) == safetensors(v2)
        results.append((dumps(first), dumps(second)))
    assert results[0] == results[1]
    assert json.loads(results[1][1])["parameters"]["t0"]["steps"][-1]["update"] != "dense"


def _later_process(tmp_path: Path) -> tuple[ParameterStore, ObjectStore]:
    """The stores a later git-theta process of the same repository opens."""
    store = ObjectStore(tmp_path / "lfs", tmp_path / "theta" / "objects")
    return ParameterStore(store, default_manager().registry), store


def _hashes_counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import theta.tensors

    calls: list[int] = []
    original = theta.tensors.sha256_hex

    def counting(data) -> str:
        calls.append(1)
        return original(data)

    monkeypatch.setattr(theta.tensors, "sha256_hex", counting)
    return calls


def test_a_tensor_stored_here_is_rebuilt_without_hashing_while_its_object_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params, _ = _later_process(tmp_path)
    metadata = clean(Cleaner(default_manager().registry, params), safetensors({"w": weights((512, 512))}), [])
    entry = metadata.parameters["w"]
    hashed = _hashes_counted(monkeypatch)
    later, _ = _later_process(tmp_path)
    assert np.array_equal(later.load(entry, "model.safetensors", "w").numpy(), weights((512, 512)))
    assert hashed == []  # the record says this chain gives its hash, and the object's file is unchanged
    later.load(entry, "model.safetensors", "w", recheck=True)  # what fsck asks for: hashed again
    assert hashed == [1]


def _flip_a_byte(path: Path, later_by_ns: int) -> None:
    """Damage the file in place (same inode and size), its modification time moved by `later_by_ns`."""
    before = path.stat()
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.seek(before.st_size // 2)
        byte = f.read(1)[0]
        f.seek(before.st_size // 2)
        f.write(bytes([byte ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + later_by_ns))


def _assert_refused_and_removed(tmp_path: Path, entry, name: str, damaged: Path) -> None:
    with pytest.raises(ObjectCorrupt):
        _later_process(tmp_path)[0].load(entry, "model.safetensors", name)
    assert not damaged.exists()  # removed, so that a fetch can bring a good copy


def test_an_object_changed_since_it_was_stored_is_checked_again_and_refused(tmp_path: Path) -> None:
    params, store = _later_process(tmp_path)
    metadata = clean(Cleaner(default_manager().registry, params), safetensors({"w": weights((512, 512))}), [])
    entry = metadata.parameters["w"]
    path = store.path(entry.steps[0].objects["value"].oid)
    _flip_a_byte(path, later_by_ns=1_000_000)
    _assert_refused_and_removed(tmp_path, entry, "w", path)


def test_a_chain_first_rebuilt_from_fetched_objects_is_hashed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cleaner, _, elsewhere = setup(tmp_path / "elsewhere")  # another clone pushed these objects
    metadata = clean(cleaner, safetensors({"w": weights((512, 512))}), [])
    entry = metadata.parameters["w"]
    _, store = _later_process(tmp_path)
    for record in entry.steps[0].objects.values():  # as git-lfs downloads them: unverified by Theta
        target = store.path(record.oid)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(elsewhere.path(record.oid).read_bytes())
    hashed = _hashes_counted(monkeypatch)
    _later_process(tmp_path)[0].load(entry, "model.safetensors", "w")
    assert hashed == [1]
    _later_process(tmp_path)[0].load(entry, "model.safetensors", "w")
    assert hashed == [1]


def _object_hashes_counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import types

    import theta.store.objects

    calls: list[int] = []

    def counting(data=b""):
        calls.append(1)
        return hashlib.sha256(data)

    monkeypatch.setattr(theta.store.objects, "hashlib", types.SimpleNamespace(sha256=counting))
    return calls


def _downloaded_chain(tmp_path: Path) -> tuple[object, np.ndarray, ObjectStore]:
    """A dense + sparse chain whose objects landed as git-lfs lands them, and were vouched for."""
    cleaner, _, elsewhere = setup(tmp_path / "elsewhere")  # another clone pushed these objects
    v1 = weights((1024, 512), 2)
    first = clean(cleaner, safetensors({"u": v1}), [])
    v2 = v1.copy()
    v2.reshape(-1)[::500] += 1.0
    entry = clean(cleaner, safetensors({"u": v2}), [first]).parameters["u"]
    assert [s.update for s in entry.steps] == ["dense", "sparse"]
    _, store = _later_process(tmp_path)
    for step in entry.steps:
        for record in step.objects.values():
            target = store.path(record.oid)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(elsewhere.path(record.oid).read_bytes())
            store.vouch(record.oid)
    return entry, v2, store


def test_a_downloaded_object_damaged_in_place_is_found_and_removed(tmp_path: Path) -> None:
    entry, _, store = _downloaded_chain(tmp_path)
    record = entry.steps[1].objects["flips"]
    path = store.path(record.oid)
    _flip_a_byte(path, later_by_ns=0)  # the same inode, size and modification time: the record cannot tell
    _assert_refused_and_removed(tmp_path, entry, "u", path)


def test_objects_git_lfs_checked_as_it_downloaded_them_are_not_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry, v2, _ = _downloaded_chain(tmp_path)
    records = [record for step in entry.steps for record in step.objects.values()]
    objects_hashed, tensors_hashed = _object_hashes_counted(monkeypatch), _hashes_counted(monkeypatch)
    assert np.array_equal(_later_process(tmp_path)[0].load(entry, "model.safetensors", "u").numpy(), v2)
    assert (objects_hashed, tensors_hashed) == ([], [1])  # the tensor, once: the decoding is what is checked
    _later_process(tmp_path)[0].load(entry, "model.safetensors", "u", recheck=True)
    assert len(objects_hashed) == len(records)  # fsck's reading hashes every object again


def test_a_checkout_vouches_for_what_lands_and_hashes_only_the_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cleaner, _, elsewhere = setup(tmp_path / "elsewhere")  # another clone pushed these objects
    v1 = {"u": weights((1024, 512), 2), "w": weights((256, 256), 3)}
    first = clean(cleaner, safetensors(v1), [])
    v2 = {k: v.copy() for k, v in v1.items()}
    v2["u"].reshape(-1)[::500] += 1.0
    metadata = clean(cleaner, safetensors(v2), [first])
    landed: list[str] = []

    def fetch(objects, label, *, arrived=None):  # lands each object as git-lfs does, checked already
        for oid, _ in objects:
            target = store.path(oid)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(elsewhere.path(oid).read_bytes())
            landed.append(oid)
            if arrived is not None:
                arrived(oid)
        return []

    params, store = _later_process(tmp_path)
    objects_hashed, tensors_hashed = _object_hashes_counted(monkeypatch), _hashes_counted(monkeypatch)
    out = io.BytesIO()
    Smudger(default_manager().registry, params, fetch).smudge(metadata, "model.safetensors", out)
    assert out.getvalue() == safetensors(v2)
    assert sorted(landed) == sorted(metadata.objects())
    assert objects_hashed == [] and len(tensors_hashed) == len(v2)
    later = _later_process(tmp_path)[1]
    assert all(later.unchanged_since_verified(oid, use.size) for oid, use in metadata.objects().items())
