from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
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


def test_a_temporary_file_of_a_killed_writer_nobody_reaped_is_swept(tmp_path: Path) -> None:
    """A writer killed while its parent has gone leaves a zombie that no init reaps in some
    containers: the process id still answers a signal, but the writer is dead."""
    store = ObjectStore(tmp_path / "lfs")
    store.tmp_dir.mkdir(parents=True)
    writer = subprocess.Popen(["sleep", "60"])
    try:
        os.kill(writer.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _state(writer.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _state(writer.pid) == "Z"
        leftover = store.tmp_dir / f"theta-spool-{writer.pid}-abc"
        leftover.write_bytes(b"partial")
        alive = store.tmp_dir / f"theta-spool-{os.getppid()}-abc"
        alive.write_bytes(b"in use")
        assert store.sweep() == [leftover]
        assert alive.exists()
    finally:
        writer.wait()


def _state(pid: int) -> str:
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
