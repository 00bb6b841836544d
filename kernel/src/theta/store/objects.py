"""The object store: Git LFS's local store, `<lfs>/objects/<oid[0:2]>/<oid[2:4]>/<oid>`.

Objects are named by the sha256 of their bytes, written atomically (a temporary file in
`<lfs>/tmp`, then a rename) and verified when read: a corrupted object is never decoded.

No pointer file in any git tree names Theta's objects, so `git lfs prune` takes them for
garbage. Each object therefore has a second name, a hard link under `<keep>` (in
`.git/theta/objects`), which costs no space; an object pruned from the LFS store is linked
back from there when it is next needed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from theta.errors import ObjectCorrupt, ObjectMissing


class ObjectStore:
    def __init__(self, lfs_dir: Path, keep_dir: Path | None = None) -> None:
        self.lfs_dir = Path(lfs_dir)
        self.objects_dir = self.lfs_dir / "objects"
        self.tmp_dir = self.lfs_dir / "tmp"
        self.keep_dir = keep_dir

    def path(self, oid: str) -> Path:
        return self.objects_dir / oid[0:2] / oid[2:4] / oid

    def _kept(self, oid: str) -> Path | None:
        return self.keep_dir / oid[0:2] / oid[2:4] / oid if self.keep_dir is not None else None

    def has(self, oid: str) -> bool:
        """True when the object is in the LFS store, after relinking it there if it was pruned."""
        if self.path(oid).is_file():
            return True
        kept = self._kept(oid)
        if kept is None or not kept.is_file():
            return False
        self._link(kept, self.path(oid))
        return True

    def put(self, data: Any, oid: str | None = None) -> tuple[str, int]:
        """Store `data` (any bytes-like object); returns (oid, size). Existing objects are kept."""
        view = memoryview(data).cast("B")
        if oid is None:
            oid = hashlib.sha256(view).hexdigest()
        target = self.path(oid)
        if not self.has(oid):
            self._write_atomic(target, view)
        kept = self._kept(oid)
        if kept is not None and not kept.exists():
            self._link(target, kept)
        return oid, len(view)

    @staticmethod
    def _link(source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: the object keeps one name
            pass

    def _write_atomic(self, target: Path, view: memoryview) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="theta-", dir=self.tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(view)
            os.chmod(tmp, 0o644)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, oid: str, size: int | None = None) -> bytes:
        """The object's bytes, checked against its oid (and size when given)."""
        if not self.has(oid):
            raise ObjectMissing(oid, f"object {oid} is not in the local store {self.objects_dir}")
        data = self.path(oid).read_bytes()
        if (size is not None and len(data) != size) or hashlib.sha256(data).hexdigest() != oid:
            for name in (self.path(oid), self._kept(oid)):
                if name is not None:
                    name.unlink(missing_ok=True)  # so that a fetch can bring a good copy
            raise ObjectCorrupt(
                oid,
                f"object {oid} in {self.objects_dir} is corrupted (its content does not match its"
                " sha256); it was removed: fetch it again with `git theta fetch`",
            )
        return data
