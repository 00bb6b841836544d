"""Which files Theta tracks: `.gitattributes` lines, listing, and fetching their objects."""

from __future__ import annotations

import sys
from pathlib import Path

from theta.errors import ThetaError
from theta.git.lfs import fetch_objects
from theta.git.repo import Repo
from theta.metadata import loads_if_metadata, looks_like_metadata
from theta.sizes import human
from theta.store.objects import ObjectStore

ATTRIBUTES = "filter=theta diff=theta merge=theta -text"


def attributes_line(pattern: str, fmt: str | None) -> str:
    escaped = pattern.replace(" ", "[[:space:]]")
    return f"{escaped} {ATTRIBUTES}" + (f" theta-format={fmt}" if fmt else "")


def track(repo: Repo, pattern: str, fmt: str | None) -> bool:
    """Add (or update) the pattern's line in the top-level .gitattributes and stage it."""
    path = repo.top_level / ".gitattributes"
    lines = path.read_text().splitlines() if path.exists() else []
    wanted = attributes_line(pattern, fmt)
    head = wanted.split(" ", 1)[0]
    kept = [line for line in lines if not (line.split(" ", 1)[0] == head and "filter=theta" in line)]
    if wanted in lines and len(kept) == len(lines) - 1:
        return False
    kept.append(wanted)
    path.write_text("\n".join(kept) + "\n")
    repo.git("add", "--", str(path))
    return True


def tracked_files(repo: Repo) -> list[str]:
LFS_POINTER_START = b"version https://git-lfs.github.com/spec/v1"


def attribute_lines(repo: Repo) -> list[str]:
    path = repo.top_level / ".gitattributes"
    return path.read_text().splitlines() if path.exists() else []


def lfs_lines(repo: Repo, pattern: str) -> list[str]:
    """The top-level .gitattributes lines that give `pattern` to Git LFS."""
    head = attributes_line(pattern, None).split(" ", 1)[0]
    return [line for line in attribute_lines(repo) if line.split(" ", 1)[0] == head and "filter=lfs" in line.split()]


def matching(repo: Repo, pattern: str) -> list[str]:
    """The files in the index that a .gitattributes `pattern` of the top directory matches."""
    bare = pattern.lstrip("/")
    spec = f":(top,glob){bare}" if "/" in pattern.rstrip("/") else f":(top,glob)**/{bare}"
    return [p for p in repo.git("ls-files", "-z", "--full-name", "--", spec, check=False).split("\0") if p]


def lfs_pointer_files(repo: Repo, pattern: str | None = None) -> list[str]:
    """Files Theta tracks (those `pattern` matches) whose staged content is still a Git LFS pointer."""
    found = []
    for path in repo.tracked_paths(matching(repo, pattern)) if pattern else tracked_files(repo):
        blob = repo.read_blob(f":{path}")
        if blob is not None and blob.startswith(LFS_POINTER_START):
            found.append(path)
    return found


def lfs_warnings(repo: Repo, pattern: str) -> list[str]:
    """What to tell a user whose pattern Git LFS tracks too."""
    lines = lfs_lines(repo, pattern)
    pointers = lfs_pointer_files(repo, pattern)
    if not lines and not pointers:
        return []
    quoted = "'" + pattern.replace("'", "'\\''") + "'"
    said = []
    if lines:
        said.append(
            f"{pattern!r} is also tracked by Git LFS (.gitattributes: `{lines[0]}`); Theta's line comes last, so"
            " Theta takes the files added from now on"
        )
    if pointers:
        shown = ", ".join(pointers[:3]) + (f" and {len(pointers) - 3} more" if len(pointers) > 3 else "")
        said.append(f"{len(pointers)} file(s) are still committed as Git LFS pointers ({shown})")
    said.append(
        f"run `git theta migrate {quoted}` to convert them and drop the Git LFS line (history is not rewritten)"
    )
    return ["; ".join(said)]


def huggingface_patterns(repo: Repo, directory: Path) -> list[str]:
    """The patterns that track a model directory as `save_pretrained` writes it: its weights, sharded or not.

    Config, tokenizer and index files are small text that git keeps as it is.
    """
    if not directory.is_dir():
        raise ThetaError(f"{directory} is not a directory (give the folder `save_pretrained` wrote)")
    try:
        relative = directory.resolve().relative_to(repo.top_level.resolve()).as_posix()
    except ValueError:
        raise ThetaError(f"{directory} is outside the repository at {repo.top_level}") from None
    prefix = "" if relative == "." else f"{relative}/"
    patterns = [f"{prefix}*.safetensors"]
    if any(directory.glob("pytorch_model*.bin")):
        patterns.append(f"{prefix}pytorch_model*.bin")
    return patterns


    paths = [p for p in repo.git("ls-files", "-z").split("\0") if p]
    return repo.tracked_paths(paths)


def fetch(repo: Repo, rev: str, paths: list[str]) -> int:
    """Download every object the tracked files at `rev` need."""
    store = ObjectStore(repo.lfs_dir, repo.keep_dir)
    listing = repo.git("ls-tree", "-r", "-z", "--full-tree", rev, "--", *paths)
    entries = [line.split("\t", 1) for line in listing.split("\0") if line]
    tracked = set(repo.tracked_paths([path for _, path in entries]))
    failed = 0
    for meta, path in entries:
        if path not in tracked:
            continue
        metadata = loads_if_metadata(repo.read_blob(meta.split()[2]), path)
        if metadata is None:
            continue
        missing = [(oid, use.size) for oid, use in metadata.objects().items() if not store.has(oid)]
        bad = fetch_objects(missing, path)
        if bad:
            failed += 1
            print(f"theta: error: {path}: {len(bad)} object(s) could not be fetched, e.g. {bad[0]}", file=sys.stderr)
    repo.close()
    if failed:
        raise ThetaError(f"{failed} file(s) could not be fetched completely")
    return 0


def checkout(repo: Repo, paths: list[str]) -> list[str]:
    """Rewrite tracked files that were left as metadata (a plugin or an object was missing)."""
    top = repo.top_level
    wanted = set(paths)
    redo = []
    for path in tracked_files(repo):
        if wanted and path not in wanted:
            continue
        file = top / path
        if file.is_file():
            with open(file, "rb") as f:
                if looks_like_metadata(f.read(256)):
                    redo.append(path)
    for path in redo:
        (top / path).unlink()
    if redo:
        repo.git("checkout", "--", *redo)
    return redo


def storage_records(repo: Repo, path: str) -> list[dict[str, object]]:
    """Per commit that changed `path`, oldest first: the objects it added that no earlier version had.

    `objects` and `added_bytes` are None where the committed file is not a Theta metadata file.
    """
    log = repo.git("log", "--reverse", "--format=%H%x09%h%x09%cs%x09%s", "--", path)
    seen: set[str] = set()
    records: list[dict[str, object]] = []
    for entry in log.splitlines():
        commit, short, date, subject = entry.split("\t", 3)
        metadata = loads_if_metadata(repo.read_blob(f"{commit}:{path}"), f"{commit}:{path}")
        if metadata is None:
            records.append({**record, "objects": None, "added_bytes": None})
            continue
        needed = metadata.objects()
        new = {oid: use.size for oid, use in needed.items() if oid not in seen}
        seen.update(needed)
        records.append({**record, "objects": len(new), "added_bytes": sum(new.values())})
    return records


def storage_history(repo: Repo, path: str) -> list[str]:
    """A line per commit that changed `path`: the bytes of objects it added that no earlier version had."""
    lines = []
    for r in storage_records(repo, path):
        if r["objects"] is None:
            lines.append(f"{r['short']} {r['date']} {'(not a Theta metadata file)':>24}  {r['subject']}")
        else:
            added = human(r["added_bytes"])  # type: ignore[arg-type]
            lines.append(f"{r['short']} {r['date']} {added:>12} in {r['objects']:>4} object(s)  {r['subject']}")
    return lines
        record: dict[str, object] = {"commit": commit, "short": short, "date": date, "subject": subject}
