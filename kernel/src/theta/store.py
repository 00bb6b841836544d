"""The object store: Git LFS's local store, `<lfs>/objects/<oid[0:2]>/<oid[2:4]>/<oid>`.

Objects are named by the sha256 of their bytes, written atomically (a temporary file in
`<lfs>/tmp`, then a rename) and verified when read: a corrupted object is never decoded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from theta.errors import ObjectCorrupt, ObjectMissing


class ObjectStore:
    def __init__(self, lfs_dir: Path) -> None:
        self.lfs_dir = Path(lfs_dir)
        self.objects_dir = self.lfs_dir / "objects"
        self.tmp_dir = self.lfs_dir / "tmp"

    def path(self, oid: str) -> Path:
        return self.objects_dir / oid[0:2] / oid[2:4] / oid

    def has(self, oid: str) -> bool:
        return self.path(oid).is_file()

    def put(self, data: Any, oid: str | None = None) -> tuple[str, int]:
        """Store `data` (any bytes-like object); returns (oid, size). Existing objects are kept."""
        view = memoryview(data).cast("B")
        if oid is None:
            oid = hashlib.sha256(view).hexdigest()
        target = self.path(oid)
        if not target.is_file():
            self._write_atomic(target, view)
        return oid, len(view)

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
        try:
            data = self.path(oid).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(oid, f"object {oid} is not in the local store {self.objects_dir}") from None
        if (size is not None and len(data) != size) or hashlib.sha256(data).hexdigest() != oid:
            raise ObjectCorrupt(
                oid,
                f"object {oid} in {self.objects_dir} is corrupted (its content does not match its"
                " sha256); delete it and fetch it again (`git theta fetch`)",
            )
        return data
