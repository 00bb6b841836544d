from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from theta.errors import ObjectCorrupt, ObjectMissing
from theta.store.objects import ObjectStore


def test_put_is_content_addressed_in_the_lfs_layout(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "lfs")
    oid, size = store.put(b"hello")
    assert oid == hashlib.sha256(b"hello").hexdigest() and size == 5
    assert store.path(oid) == tmp_path / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    assert store.read(oid, 5) == b"hello"
    assert list((tmp_path / "lfs" / "tmp").iterdir()) == []


def test_missing_and_corrupted_objects(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "lfs")
    oid, _ = store.put(b"payload")
    with pytest.raises(ObjectMissing):
        store.read("0" * 64)
    store.path(oid).write_bytes(b"pay1oad")
    with pytest.raises(ObjectCorrupt, match=oid):
        store.read(oid)


def test_existing_object_is_not_rewritten(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "lfs")
    oid, _ = store.put(b"same")
    before = store.path(oid).stat().st_mtime_ns
    store.put(b"same")
    assert store.path(oid).stat().st_mtime_ns == before


def test_failed_write_leaves_no_partial_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ObjectStore(tmp_path / "lfs")

    def interrupted(src: str, dst: str) -> None:
        raise OSError("interrupted before the rename")

    monkeypatch.setattr("theta.store.objects.os.replace", interrupted)
    with pytest.raises(OSError, match="interrupted"):
        store.put(b"x" * 1000)
    assert list((tmp_path / "lfs" / "tmp").iterdir()) == []
    assert [p for p in (tmp_path / "lfs").rglob("*") if p.is_file()] == []


def test_pruned_object_is_linked_back(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "lfs", tmp_path / "keep")
    oid, _ = store.put(b"survives a prune")
    store.path(oid).unlink()  # what `git lfs prune` does to an object no pointer names
    assert store.has(oid)
    assert store.read(oid) == b"survives a prune"


def test_corrupted_object_is_removed_so_it_can_be_fetched_again(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "lfs", tmp_path / "keep")
    oid, _ = store.put(b"payload")
    store.path(oid).write_bytes(b"pay1oad")
    with pytest.raises(ObjectCorrupt):
        store.read(oid)
    assert not store.has(oid)
