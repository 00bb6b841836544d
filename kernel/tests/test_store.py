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


def test_an_object_verified_before_and_unchanged_since_is_not_read_again(tmp_path: Path) -> None:
    keep = tmp_path / "theta" / "objects"
    oid, _ = ObjectStore(tmp_path / "lfs", keep).put(b"x" * 1000)
    path = ObjectStore(tmp_path / "lfs", keep).path(oid)
    before = path.stat()
    with open(path, "r+b") as f:  # damage it and put its timestamps back: nothing a stat sees changes
        f.write(b"y")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    later = ObjectStore(tmp_path / "lfs", keep)
    assert later.known_sound(oid, 1000)  # trusted from the record: not read
    assert not ObjectStore(tmp_path / "lfs", keep).verify(oid, 1000)  # the pre-push and fsck read it


def test_an_object_changed_since_its_verification_is_verified_again(tmp_path: Path) -> None:
    keep = tmp_path / "theta" / "objects"
    oid, _ = ObjectStore(tmp_path / "lfs", keep).put(b"x" * 1000)
    path = ObjectStore(tmp_path / "lfs", keep).path(oid)
    stamp = path.stat().st_mtime_ns
    path.chmod(0o644)
    path.write_bytes(b"y" * 1000)
    os.utime(path, ns=(stamp + 1_000_000, stamp + 1_000_000))
    store = ObjectStore(tmp_path / "lfs", keep)
    assert not store.known_sound(oid, 1000)
    assert store.put(b"x" * 1000) == (oid, 1000)  # rewritten
    assert path.read_bytes() == b"x" * 1000
    assert ObjectStore(tmp_path / "lfs", keep).known_sound(oid, 1000)


def test_a_damaged_record_of_verifications_is_ignored(tmp_path: Path) -> None:
    keep = tmp_path / "theta" / "objects"
    oid, _ = ObjectStore(tmp_path / "lfs", keep).put(b"x" * 1000)
    (tmp_path / "theta" / "verified").write_text(f"{oid} 1 x\n\0\0garbage\n{oid} 1 2 3 4\n")
    assert ObjectStore(tmp_path / "lfs", keep).known_sound(oid, 1000)  # verified by reading it


def test_a_mapped_object_reads_as_stored_and_is_released(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "lfs")
    oid, _ = store.put(b"tensor bytes" * 1000)
    with store.mapped(oid) as view:
        assert bytes(view) == b"tensor bytes" * 1000
    with pytest.raises(ValueError, match="released"):
        view.tobytes()
    store.discard(oid)
    with pytest.raises(ObjectMissing), store.mapped(oid):
        pass
