"""Opening a `torch.save` archive: its members, its pickle, and the checks it must pass."""

from __future__ import annotations

import zlib

from attrs import frozen

from theta.errors import FormatError
from theta_format_torch.ziparchive import STORED, Member, ZipError, read_members

DEFLATED = 8
ZIP_MAGIC = b"PK\x03\x04"
# Pre-1.6 files are a bare pickle stream that starts with this magic number (a pickled long).
LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"

# torch.save stores data.pkl uncompressed; an archive rezipped by another tool may deflate
# it, which pickles of state dicts survive at ratios far below this.
MAX_DEFLATE_RATIO = 64
MAX_INFLATED = 1 << 30
RESAVE = "load it with a current torch and save it again with torch.save (the ZIP format is the default since 1.6)"


@frozen(kw_only=True)
class TorchArchive:
    """The members of a `torch.save` ZIP archive, all under one directory `prefix`."""

    prefix: str
    members: dict[str, Member]
    pickle: Member

    def storage(self, key: str) -> Member | None:
        return self.members.get(f"{self.prefix}data/{key}")


def first_member_name(head: bytes) -> bytes | None:
    """The name of the first local header in `head`, or None when `head` is no ZIP start."""
    if not head.startswith(ZIP_MAGIC) or len(head) < 30:
        return None
    length = int.from_bytes(head[26:28], "little")
    return head[30 : 30 + length] if len(head) >= 30 + length else None


def is_legacy(head: bytes) -> bool:
    return head.startswith(b"\x80") and LEGACY_MAGIC in head[:32]


def is_torch_zip(head: bytes) -> bool:
    name = first_member_name(head)
    return name is not None and (name == b"data.pkl" or name.endswith(b"/data.pkl")) and name.count(b"/") <= 1


def check_head(head: bytes, path: str) -> None:
    """Refuse, with the reason, a file that cannot be a `torch.save` ZIP archive."""
    if is_legacy(head):
        raise FormatError(
            f"{path}: this is a legacy (pre-1.6, non-ZIP) PyTorch file, which Theta does not read"
            f" because it cannot be loaded without unrestricted unpickling; {RESAVE}"
        )
    if not head.startswith(ZIP_MAGIC):
        raise FormatError(
            f"{path}: not a PyTorch checkpoint: torch.save writes a ZIP archive (starting with 'PK\\x03\\x04'),"
            f" this file starts with {bytes(head[:8])!r}; if it is another format, set theta-format in .gitattributes"
        )


def open_archive(buf: memoryview, path: str) -> TorchArchive:
    try:
        members = read_members(buf)
    except ZipError as exc:
        raise FormatError(f"{path}: not a readable torch.save archive: {exc}") from None
    by_name = {m.name: m for m in members}
    pickles = [m for m in members if m.name.endswith("data.pkl") and m.name.count("/") <= 1]
    if len(pickles) != 1:
        raise FormatError(
            f"{path}: a ZIP archive but not a torch.save checkpoint (it needs exactly one <archive>/data.pkl,"
            f" found {len(pickles)})"
        )
    pickle = pickles[0]
    prefix = pickle.name[: -len("data.pkl")]
    if f"{prefix}constants.pkl" in by_name or any(n.startswith(f"{prefix}code/") for n in by_name):
        raise FormatError(
            f"{path}: this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint;"
            " save the model's state_dict with torch.save to version it with Theta"
        )
    archive = TorchArchive(prefix=prefix, members=by_name, pickle=pickle)
    byteorder = by_name.get(f"{prefix}byteorder")
    if byteorder is not None and member_bytes(buf, byteorder, path) != b"little":
        raise FormatError(
            f"{path}: the tensors were saved big-endian, which Theta does not support;"
            f" {RESAVE} on a little-endian machine"
        )
    return archive


def inflate(raw: bytes, declared: int | None, what: str) -> bytes:
    """A deflated member's bytes, never more than it declares, than MAX_INFLATED, or than
    MAX_DEFLATE_RATIO times its stored size: a small file cannot claim a large allocation."""
    ceiling = min(MAX_INFLATED, MAX_DEFLATE_RATIO * len(raw) + 4096)
    limit = ceiling if declared is None else declared
    if limit > ceiling:
        raise FormatError(
            f"{what} claims {declared} bytes inflated from {len(raw)}: more than Theta accepts"
            f" ({MAX_DEFLATE_RATIO} times its size, at most {MAX_INFLATED} bytes); the file is damaged or hostile"
        )
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise FormatError(f"{what} is damaged: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise FormatError(f"{what} inflates to more than the {limit} bytes it may have; the file is damaged or hostile")
    if declared is not None and len(out) != declared:
        raise FormatError(f"{what} inflates to {len(out)} bytes, its header declares {declared}; the file is damaged")
    return out


def member_bytes(buf: memoryview, member: Member, path: str) -> bytes:
    raw = bytes(buf[member.data_offset : member.data_end])
    if member.method == STORED:
        return raw
    if member.method == DEFLATED:
        return inflate(raw, member.size, f"{path}: archive member {member.name!r}")
    raise FormatError(
        f"{path}: archive member {member.name!r} uses ZIP compression method {member.method}, which torch never writes"
    )
