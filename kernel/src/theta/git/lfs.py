"""Git LFS as the transport: push objects by oid, fetch them in batches.

Theta's objects are ordinary Git LFS objects, but no pointer file in a git tree names them,
so `git lfs push` and `git lfs fetch` would not find them. Pushing names them explicitly
(`git lfs push --object-id`). Fetching drives `git lfs filter-process` as git would during a
checkout: one smudge request per object, each allowed to be delayed, so git-lfs downloads
them in batches; the objects land in the local store, and the caller checks which arrived.
git-lfs lands the objects of one session in no particular order, so a caller that uses them
in order as they arrive (a checkout) gets them in waves, consecutive runs of growing size,
each its own session.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from theta.errors import ThetaError
from theta.git.pktline import PacketReader, PacketWriter, ProtocolError
from theta.git.repo import Repo
from theta.progress import Progress, shows_progress

POINTER_TEMPLATE = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"


def pointer(oid: str, size: int) -> bytes:
    return POINTER_TEMPLATE.format(oid=oid, size=size).encode()


def push_objects(remote: str, oids: Sequence[str], cwd: str | None = None) -> None:
    if not oids:
        return
    # On a terminal git-lfs draws its own progress line ("Uploading LFS objects: ..."), the storing phase;
    # it does so only when its stdout is a terminal too, so both go to stderr.
    shown = shows_progress()
    proc = subprocess.run(
        ["git", "lfs", "push", "--object-id", remote, "--stdin"],
        input="\n".join(oids).encode() + b"\n",
        cwd=cwd,
        stdout=sys.stderr if shown else subprocess.PIPE,
        stderr=None if shown else subprocess.PIPE,
    )
    if proc.returncode != 0:
        details = proc.stderr.decode(errors="replace").strip() if proc.stderr else "(git-lfs said why, above)"
        raise ThetaError(f"git lfs push of {len(oids)} object(s) to {remote!r} failed:\n{details}")


def fetch_objects(
    objects: Sequence[tuple[str, int]],
    label: str,
    cwd: str | os.PathLike[str] | None = None,
    arrived: Callable[[str], None] | None = None,
) -> list[str]:
    """Download `objects` ((oid, size) pairs) into the local store of the repository at `cwd`
    (default: the current directory); returns the oids that failed.

    `arrived(oid)` is called as each object lands, from the calling thread, so that a caller
    running this on another thread can use the first objects while the rest download. With it,
    the objects are downloaded in waves (`waves`): each lands after every object listed before
    its wave.
    """
    if not objects:
        return []
    env = {k: v for k, v in os.environ.items() if k != "GIT_LFS_SKIP_SMUDGE"}
    progress = Progress(f"downloading {len(objects)} object(s) for {label}", sum(s for _, s in objects), "B", 0.5)
    try:
        for wave in waves(objects) if arrived is not None else [objects]:
            if not _fetch_session(wave, label, progress, arrived, cwd, env):
                break
    finally:
        progress.close()
    # git-lfs lists the objects it failed to download as available too: what landed is what counts
    local = Repo(Path(cwd) if cwd is not None else None).lfs_dir / "objects"
    absent = [(oid, size) for oid, size in objects if not (local / oid[0:2] / oid[2:4] / oid).is_file()]
    return _diagnose(absent, cwd, env)


FIRST_WAVE_BYTES = 16 << 20
LARGEST_WAVE_BYTES = 256 << 20


def waves(objects: Sequence[tuple[str, int]]) -> Iterator[list[tuple[str, int]]]:
    """`objects` in consecutive runs, the first of FIRST_WAVE_BYTES, each next one twice as large up
    to LARGEST_WAVE_BYTES: the first objects are had after a small download, and each session's
    start (a process, a batch request) is paid once per wave."""
    wave: list[tuple[str, int]] = []
    size, limit = 0, FIRST_WAVE_BYTES
    for oid, n in objects:
        wave.append((oid, n))
        size += n
        if size >= limit:
            yield wave
            wave, size, limit = [], 0, min(2 * limit, LARGEST_WAVE_BYTES)
    if wave:
        yield wave


def _fetch_session(
    objects: Sequence[tuple[str, int]],
    label: str,
    progress: Progress,
    arrived: Callable[[str], None] | None,
    cwd: str | os.PathLike[str] | None,
    env: dict[str, str],
) -> bool:
    """One `git lfs filter-process` downloading `objects`; False when it stopped or gave up before the end."""
    proc = subprocess.Popen(
        ["git", "lfs", "filter-process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=cwd
    )
    assert proc.stdin and proc.stdout
    try:
        return _fetch_through(PacketReader(proc.stdout), PacketWriter(proc.stdin), objects, progress, arrived)
    except (EOFError, ProtocolError, BrokenPipeError) as exc:
        print(f"theta: git lfs filter-process stopped while downloading objects for {label}: {exc}", file=sys.stderr)
        return False
    finally:
        if proc.stdin:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        proc.wait()


class FetchFailures(list):  # type: ignore[type-arg]
    """The oids that did not arrive; `corrupt_on_remote` holds those the remote has with other content."""

    def __init__(self, oids: Iterable[str] = (), corrupt_on_remote: Iterable[str] = ()) -> None:
        super().__init__(oids)
        self.corrupt_on_remote = frozenset(corrupt_on_remote)


MAX_DIAGNOSED = 16  # objects asked one by one why they did not arrive (the rest share the first reasons)
CORRUPT_SIGNS = ("invalid hash", "expected OID")  # git-lfs's words for a download that failed its sha256 check


def _diagnose(absent: Sequence[tuple[str, int]], cwd: str | os.PathLike[str] | None, env: dict[str, str]) -> list[str]:
    """Ask git-lfs again for each object that did not arrive, one at a time, to learn why."""
    failed, corrupt = [], []
    for index, (oid, size) in enumerate(absent):
        if index >= MAX_DIAGNOSED:
            failed.append(oid)
            continue
        proc = subprocess.run(
            ["git", "lfs", "smudge", oid], input=pointer(oid, size), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env, cwd=cwd,
        )  # fmt: skip
        if proc.returncode == 0:
            continue  # it arrived this time
        failed.append(oid)
        if any(sign in proc.stderr.decode(errors="replace") for sign in CORRUPT_SIGNS):
            corrupt.append(oid)
    return FetchFailures(failed, corrupt)


def _fetch_through(
    reader: PacketReader,
    writer: PacketWriter,
    objects: Sequence[tuple[str, int]],
    progress: Progress,
    arrived: Callable[[str], None] | None = None,
) -> bool:
    """Ask for every object, then collect those git-lfs delayed; False when git-lfs gave up (abort)."""
    landed = arrived or (lambda oid: None)
    writer.text_list("git-filter-client", "version=2")
    if reader.read_text_list()[:1] != ["git-filter-server"]:
        raise ProtocolError("git lfs filter-process did not greet as a filter server")
    writer.text_list("capability=clean", "capability=smudge", "capability=delay")
    can_delay = "capability=delay" in reader.read_text_list()
    sizes = dict(objects)
    delayed: set[str] = set()
    for oid, size in objects:
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
            landed(oid)
        elif status == "abort":
            return False
    while delayed:
        writer.text_list("command=list_available_blobs")
        available = [line.removeprefix("pathname=") for line in reader.read_text_list()]
        reader.read_text_list()  # the status of the list itself
        if not available:
            break
        for oid in available:
            # A listed blob is already in the local store: its content is not asked for, so
            # git-lfs does not send the object back through the pipe.
            delayed.discard(oid)
            progress.advance(sizes[oid])
            landed(oid)
    return True


def _discard_content(reader: PacketReader, progress: Progress) -> None:
    while (packet := reader.read_packet()) is not None:
        progress.advance(len(packet))
    final = reader.read_keys()
    if final.get("status", "success") != "success":
        raise ProtocolError(f"git lfs reported {final.get('status')} after sending content")
