"""Git LFS as the transport: push objects by oid, fetch them in batches.

Theta's objects are ordinary Git LFS objects, but no pointer file in a git tree names them,
so `git lfs push` and `git lfs fetch` would not find them. Pushing names them explicitly
(`git lfs push --object-id`). Fetching drives one `git lfs filter-process` as git would during
a checkout: one smudge request per object, each allowed to be delayed, so git-lfs downloads
them in batches; the objects land in the local store, and the caller checks which arrived.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence

from theta.errors import ThetaError
from theta.git.pktline import PacketReader, PacketWriter, ProtocolError
from theta.progress import Progress

POINTER_TEMPLATE = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"


def pointer(oid: str, size: int) -> bytes:
    return POINTER_TEMPLATE.format(oid=oid, size=size).encode()


def push_objects(remote: str, oids: Sequence[str], cwd: str | None = None) -> None:
    if not oids:
        return
    proc = subprocess.run(
        ["git", "lfs", "push", "--object-id", remote, "--stdin"],
        input="\n".join(oids).encode() + b"\n",
        cwd=cwd,
        capture_output=True,
    )
    if proc.returncode != 0:
        details = proc.stderr.decode(errors="replace").strip()
        raise ThetaError(f"git lfs push of {len(oids)} object(s) to {remote!r} failed:\n{details}")


def fetch_objects(objects: Sequence[tuple[str, int]], label: str) -> list[str]:
    """Download `objects` ((oid, size) pairs) into the local store; returns the oids that failed."""
    if not objects:
        return []
    env = {k: v for k, v in os.environ.items() if k != "GIT_LFS_SKIP_SMUDGE"}
    proc = subprocess.Popen(["git", "lfs", "filter-process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stdin and proc.stdout
    progress = Progress(f"downloading {len(objects)} object(s) for {label}", sum(s for _, s in objects), "B", 0.5)
    try:
        failed = _fetch_through(PacketReader(proc.stdout), PacketWriter(proc.stdin), objects, progress)
    except (EOFError, ProtocolError, BrokenPipeError) as exc:
        print(f"theta: git lfs filter-process stopped while downloading objects for {label}: {exc}", file=sys.stderr)
        failed = [oid for oid, _ in objects]  # the caller checks the store for what did arrive
    finally:
        progress.close()
        if proc.stdin:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        proc.wait()
    return failed


def _fetch_through(
    reader: PacketReader, writer: PacketWriter, objects: Sequence[tuple[str, int]], progress: Progress
) -> list[str]:
    writer.text_list("git-filter-client", "version=2")
    if reader.read_text_list()[:1] != ["git-filter-server"]:
        raise ProtocolError("git lfs filter-process did not greet as a filter server")
    writer.text_list("capability=clean", "capability=smudge", "capability=delay")
    can_delay = "capability=delay" in reader.read_text_list()
    sizes = dict(objects)
    failed: list[str] = []
    delayed: set[str] = set()
    for index, (oid, size) in enumerate(objects):
        writer.text("command=smudge", f"pathname={oid}")
        if can_delay:
            writer.text("can-delay=1")
        writer.flush()
        writer.packet(pointer(oid, size))
        writer.flush()
        status = reader.read_keys().get("status")
        if status == "delayed":
            delayed.add(oid)
        elif status == "success":
            _discard_content(reader, progress)
        else:
            failed.append(oid)
            if status == "abort":
                return failed + [o for o, _ in objects[index + 1 :]] + sorted(delayed)
    while delayed:
        writer.text_list("command=list_available_blobs")
        available = [line.removeprefix("pathname=") for line in reader.read_text_list()]
        reader.read_text_list()  # the status of the list itself
        if not available:
            failed.extend(sorted(delayed))
            break
        for oid in available:
            # A listed blob is already in the local store: its content is not asked for, so
            # git-lfs does not send the object back through the pipe.
            delayed.discard(oid)
            progress.advance(sizes[oid])
    return failed


def _discard_content(reader: PacketReader, progress: Progress) -> None:
    while (packet := reader.read_packet()) is not None:
        progress.advance(len(packet))
    final = reader.read_keys()
    if final.get("status", "success") != "success":
        raise ProtocolError(f"git lfs reported {final.get('status')} after sending content")
