"""The object store: Git LFS's local store, `<lfs>/objects/<oid[0:2]>/<oid[2:4]>/<oid>`.

Objects are named by the sha256 of their bytes, written atomically (a temporary file in
`<lfs>/tmp`, then a rename) and verified when read: a corrupted object is never decoded.
Storing an object that is already there checks the copy that is there, and replaces it when
it is damaged; so does `verify`, which the pre-push and fsck use before trusting a copy.

No pointer file in any git tree names Theta's objects, so `git lfs prune` takes them for
garbage. Each object therefore has a second name, a hard link under `<keep>` (in
`.git/theta/objects`), which costs no space; an object pruned from the LFS store is linked
back from there when it is next needed, and an object git-lfs downloaded (a fresh clone)
gets its second name the first time it is looked at.

A tensor stored whole and compressed is read through a memory mapping of its object (no copy)
and checked by the sha256 of the tensor it decodes to.

Verifying reads the whole object. Where a file is cleaned again (git does so for a file it
just checked out, when the timestamps cannot tell it unchanged), the objects it reuses are
checked by `known_sound`: an object verified before in this repository whose file has not
changed since (same inode, size and modification time, as git's index trusts a file) is not
read again. The record of those verifications is `.git/theta/verified`, beside `<keep>`; the
pre-push and fsck always `verify`.

The same record keeps a second kind of fact, one line per chain (`decodes <digest>`): that a
parameter's steps rebuild the tensor of the hash its entry names (`metadata.chain_digest`).
It holds for good, since objects are named by their content: it was checked when the tensor
was rebuilt and hashed, or when it was stored (its update decoded to the tensor's very bits).

A process killed while writing leaves a temporary file behind. Temporary files carry the
writer's process id (`theta-[<kind>-]<pid>-*`); the first look-up of a later process removes
those, in `<lfs>/tmp` and in the spool directory beside `<keep>`, whose writer is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from theta.errors import ObjectCorrupt, ObjectMissing

TEMP_PREFIX = "theta-"
CHUNK = 1 << 22
# A temporary file named without a process id is taken as stray once it is this old.
STRAY_AGE = 24 * 3600
VERIFIED_RECORD = "verified"
# The record of verifications is started again once it is this large.
VERIFIED_RECORD_LIMIT = 16 << 20
DECODES = "decodes"


class ObjectStore:
    def __init__(self, lfs_dir: Path, keep_dir: Path | None = None) -> None:
        self.lfs_dir = Path(lfs_dir)
        self.objects_dir = self.lfs_dir / "objects"
        self.tmp_dir = self.lfs_dir / "tmp"
        self.keep_dir = keep_dir
        self._verified: set[str] = set()
        self._trusted: set[str] = set()
        self._recorded: dict[str, tuple[int, int, int]] | None = None
        self._decodings: set[str] = set()
        self._record_lock = threading.RLock()  # the fetch thread vouches while workers read the record
        self._swept = False

    def path(self, oid: str) -> Path:
        return self.objects_dir / oid[0:2] / oid[2:4] / oid

    def _kept(self, oid: str) -> Path | None:
        return self.keep_dir / oid[0:2] / oid[2:4] / oid if self.keep_dir is not None else None

    def has(self, oid: str) -> bool:
        """True when the object is in the LFS store (relinked there if it was pruned; given its second name)."""
        self._sweep_once()
        path = self.path(oid)
        kept = self._kept(oid)
        if path.is_file():
            if kept is not None and not kept.exists():
                self._link(path, kept)
            return True
        if kept is None or not kept.is_file():
            return False
        self._link(kept, path)
        return True

    def verify(self, oid: str, size: int | None = None) -> bool:
        """True when the object is here and its bytes hash to its oid (and have `size` bytes, if given)."""
        if oid in self._verified:
            return True
        if not self.has(oid):
            return False
        path = self.path(oid)
        try:
            if size is not None and path.stat().st_size != size:
                return False
            digest = hashlib.sha256()
            buffer = memoryview(bytearray(CHUNK))
            with open(path, "rb", buffering=0) as f:
                while got := f.readinto(buffer):
                    digest.update(buffer[:got])
        except OSError:
            return False
        if digest.hexdigest() != oid:
            return False
        self._note_sound(oid)
        return True

    def known_sound(self, oid: str, size: int | None = None) -> bool:
        """Whether the object is sound, trusting a verification recorded in this repository while
        the object's file is unchanged since; else `verify`."""
        if oid in self._verified or oid in self._trusted:
            return True
        if not self.has(oid):
            return False
        if self.unchanged_since_verified(oid, size):
            self._trusted.add(oid)
            return True
        return self.verify(oid, size)

    def unchanged_since_verified(self, oid: str, size: int | None = None) -> bool:
        """Whether the object's file is, by its inode, size (and `size`, if given) and modification
        time, one this repository verified or wrote (the record on disk says so; nothing is read)."""
        signature = self._signature(oid)
        return signature is not None and (size is None or signature[1] == size) and self._record().get(oid) == signature

    def _signature(self, oid: str) -> tuple[int, int, int] | None:
        try:
            st = self.path(oid).stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _record_path(self) -> Path | None:
        return self.keep_dir.parent / VERIFIED_RECORD if self.keep_dir is not None else None

    def _record(self) -> dict[str, tuple[int, int, int]]:
        with self._record_lock:
            if self._recorded is None:
                self._recorded = {}
                path = self._record_path()
                try:
                    if path is not None and path.stat().st_size <= VERIFIED_RECORD_LIMIT:
                        for line in path.read_text(errors="replace").splitlines():
                            fields = line.split()
                            if len(fields) == 4 and all(f.isdigit() for f in fields[1:]):
                                self._recorded[fields[0]] = (int(fields[1]), int(fields[2]), int(fields[3]))
                            elif len(fields) == 2 and fields[0] == DECODES:
                                self._decodings.add(fields[1])
                    elif path is not None:
                        path.unlink()
                except OSError:
                    pass
            return self._recorded

    def _note_sound(self, oid: str) -> None:
        """Record that the object's file, as it is now, was verified (one appended line)."""
        self._verified.add(oid)
        path, signature = self._record_path(), self._signature(oid)
        if path is None or signature is None or self._record().get(oid) == signature:
            return
        self._record()[oid] = signature
        self._append(f"{oid} {signature[0]} {signature[1]} {signature[2]}")

    def vouch(self, oid: str) -> None:
        """Record that the object's file, as it is now, is sound without hashing it here: it just
        decoded to the tensor of the hash its entry names, a check that covers every byte, or
        git-lfs checked its sha256 as it downloaded it."""
        self._note_sound(oid)

    def known_decoding(self, digest: str) -> bool:
        """Whether the chain of this `chain_digest` was recorded as rebuilding its tensor."""
        self._record()
        return digest in self._decodings

    def note_decoding(self, digest: str) -> None:
        """Record that the chain of this `chain_digest` rebuilds its tensor."""
        if self.known_decoding(digest):
            return
        self._decodings.add(digest)
        self._append(f"{DECODES} {digest}")

    def _append(self, line: str) -> None:
        path = self._record_path()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone's first objects may be downloads
            with self._record_lock, open(path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass

    def put(self, data: Any, oid: str | None = None) -> tuple[str, int]:
        """Store `data` (any bytes-like object); returns (oid, size).

        A sound copy that is already there is kept; a missing or damaged one is (re)written,
        under both of its names.
        """
        view = memoryview(data).cast("B")
        if oid is None:
            oid = hashlib.sha256(view).hexdigest()
        if not self.known_sound(oid, len(view)):
            self._write_atomic(self.path(oid), view)
            kept = self._kept(oid)
            if kept is not None:
                self._link(self.path(oid), kept, replace=True)
            self._note_sound(oid)
        return oid, len(view)

    def _link(self, source: Path, target: Path, replace: bool = False) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if replace:
                if target.exists() and os.path.samefile(source, target):
                    return
                staged = self._temp_name(target.parent)
                os.link(source, staged)
                os.replace(staged, target)
            else:
                os.link(source, target)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: the object keeps one name
            pass

    def _temp_name(self, directory: Path) -> Path:
        return directory / f"{temp_prefix()}{os.urandom(6).hex()}"

    def _write_atomic(self, target: Path, view: memoryview) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._sweep_once()
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), dir=self.tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(view)
            os.chmod(tmp, 0o644)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, oid: str, size: int | None = None, check: bool = True) -> bytes:
        """The object's bytes, checked against its oid (and size when given); `check=False` (the
        size alone) only for an object whose file is `unchanged_since_verified`."""
        if not self.has(oid):
            raise ObjectMissing(oid, f"object {oid} is not in the local store {self.objects_dir}")
        data = self.path(oid).read_bytes()
        if not check and (size is None or len(data) == size):
            return data
        if (size is not None and len(data) != size) or hashlib.sha256(data).hexdigest() != oid:
            self.discard(oid)  # so that a fetch can bring a good copy
            raise ObjectCorrupt(
                oid,
                f"object {oid} in {self.objects_dir} is corrupted (its content does not match its"
                " sha256); it was removed: fetch it again with `git theta fetch`",
            )
        self._note_sound(oid)
        return data

    @contextlib.contextmanager
    def mapped(self, oid: str) -> Iterator[memoryview]:
        """The object's bytes as they are on disk, mapped rather than copied, and not verified:
        only for bytes that are decoded at once and checked by a hash of what they decode to.

        Objects are replaced by renaming, never rewritten in place, so a mapping stays whole.
        """
        if not self.has(oid):
            raise ObjectMissing(oid, f"object {oid} is not in the local store {self.objects_dir}")
        with open(self.path(oid), "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                yield memoryview(b"")
                return
            mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            if hasattr(mmap, "MADV_SEQUENTIAL"):
                mapping.madvise(mmap.MADV_SEQUENTIAL)
            with memoryview(mapping) as view:
                yield view
        finally:
            with contextlib.suppress(BufferError):  # a view still held elsewhere: the mapping goes with it
                mapping.close()

    def discard(self, oid: str) -> None:
        """Remove both names of an object (a damaged copy, or garbage)."""
        self._verified.discard(oid)
        for name in (self.path(oid), self._kept(oid)):
            if name is not None:
                name.unlink(missing_ok=True)

    def size_on_disk(self, oid: str) -> int:
        for name in (self.path(oid), self._kept(oid)):
            if name is not None and name.is_file():
                return name.stat().st_size
        return 0

    def theta_oids(self) -> set[str]:
        """Theta's objects: those with a second name under `<keep>`."""
        if self.keep_dir is None or not self.keep_dir.is_dir():
            return set()
        return {p.name for p in self.keep_dir.glob("??/??/*") if len(p.name) == 64 and p.is_file()}

    # -- leftovers of killed processes -------------------------------------------------------

    def scratch_dirs(self) -> list[Path]:
        """Where Theta writes temporary files: `<lfs>/tmp`, and the spool directory beside `<keep>`."""
        dirs = [self.tmp_dir]
        if self.keep_dir is not None:
            dirs.append(self.keep_dir.parent / "tmp")
        return dirs

    def _sweep_once(self) -> None:
        if not self._swept:
            self._swept = True
            self.sweep()

    def sweep(self) -> list[Path]:
        """Remove temporary files of processes that are gone; returns what was removed."""
        removed = []
        for directory in self.scratch_dirs():
            if not directory.is_dir():
                continue
            for path in directory.glob(f"{TEMP_PREFIX}*"):
                if not _stray(path):
                    continue
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def temp_prefix(kind: str = "") -> str:
    """The prefix of a temporary file of this process: `theta-[<kind>-]<pid>-`, so a sweep can tell it apart."""
    return f"{TEMP_PREFIX}{kind + '-' if kind else ''}{os.getpid()}-"


_PID = re.compile(rf"^{TEMP_PREFIX}(?:[a-z]+-)?(\d+)-")


def _stray(path: Path) -> bool:
    match = _PID.match(path.name)
    if match is None:  # named by an older version: only its age tells
        try:
            return time.time() - path.stat().st_mtime > STRAY_AGE
        except FileNotFoundError:
            return False
    pid = int(match.group(1))
    return pid != os.getpid() and not _running(pid)


def _running(pid: int) -> bool:
    """Whether process `pid` still runs; a zombie (killed, not yet reaped) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
