"""Which files Theta tracks: `.gitattributes` lines, listing, and fetching their objects."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from theta.errors import ThetaError
from theta.git.lfs import fetch_objects
from theta.git.repo import Repo
from theta.metadata import loads_if_metadata, looks_like_metadata
from theta.sizes import human
from theta.store.objects import ObjectStore

ATTRIBUTES = "filter=theta diff=theta merge=theta -text"
THETA_FILTER = "theta"


def attributes_line(pattern: str, fmt: str | None) -> str:
    escaped = pattern.replace(" ", "[[:space:]]")
    return f"{escaped} {ATTRIBUTES}" + (f" theta-format={fmt}" if fmt else "")


def check_pattern(pattern: str) -> None:
    """Refuse a pattern that .gitattributes would not read as one pattern of files."""
    if not pattern.strip():
        raise ThetaError("the PATTERN is empty: give a glob of the files to track, e.g. '*.safetensors'")
    if any(ord(c) < 32 or c == "\x7f" for c in pattern):
        raise ThetaError(
            f"{pattern!r}: a pattern cannot hold a line break, tab or other control character"
            " (.gitattributes holds one pattern per line); match them with '?' or [[:space:]]"
        )
    if pattern[0] in "#!":
        meaning = "a comment" if pattern[0] == "#" else "a negative pattern, which git ignores"
        raise ThetaError(
            f"{pattern!r}: a line starting with {pattern[0]!r} is {meaning} in .gitattributes;"
            f" track '\\{pattern}' for file names that start with {pattern[0]!r}"
        )


def track(repo: Repo, pattern: str, fmt: str | None) -> bool:
    """Add (or update) the pattern's line in the top-level .gitattributes and stage it."""
    check_pattern(pattern)
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
    with at_top(repo) as top:
        for path in top.tracked_paths(matching(top, pattern)) if pattern else tracked_files(top):
            blob = top.read_blob(f":{path}")
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
    relative = work_tree_path(repo, str(directory))
    prefix = "" if relative == "." else f"{relative}/"
    patterns = [f"{prefix}*.safetensors"]
    if any(directory.glob("pytorch_model*.bin")):
        patterns.append(f"{prefix}pytorch_model*.bin")
    return patterns


def tracked_files(repo: Repo, pathspecs: Sequence[str] = ()) -> list[str]:
    """The files in the index that Theta tracks (among `pathspecs`), named as git does from the
    current directory."""
    paths = [p for p in repo.git("ls-files", "-z", "--", *pathspecs).split("\0") if p]
    return repo.tracked_paths(paths)


@contextlib.contextmanager
def at_top(repo: Repo) -> Iterator[Repo]:
    """The repository run from the top of its work tree, so that git names every file from there."""
    top = Repo(repo.top_level)
    try:
        yield top
    finally:
        top.close()


def work_tree_path(repo: Repo, given: str) -> str:
    """`given` (relative to the current directory) as git names it, from the top of the work tree."""
    try:  # a symbolic link keeps its own name, as git tracks it
        return Path(os.path.normpath(Path(given).absolute())).relative_to(repo.top_level.resolve()).as_posix()
    except ValueError:
        raise ThetaError(f"{given} is outside the repository at {repo.top_level}") from None


def fetch(repo: Repo, rev: str, paths: list[str], params: list[str] | None = None) -> int:
    """Download every object the tracked files at `rev` need (only the chains of `params`, when given).

    Which files are tracked is read from `rev`'s own `.gitattributes`, so this works in a
    `--no-checkout` clone. Objects are downloaded in one batch; an object that does not
    arrive is an error naming the file, the parameter and the object.
    """
    from theta.diffing.revisions import verify_revision
    from theta.diffing.select import chain_objects, selector
    from theta.git.attributes import attributes_at

    commit = verify_revision(repo, rev)
    store = ObjectStore(repo.lfs_dir, repo.keep_dir)
    named = {given: work_tree_path(repo, given) for given in paths}  # as the tree names them, from its top
    everything = "." in named.values()
    listing = repo.git("ls-tree", "-r", "-z", "--full-tree", commit, "--", *([] if everything else named.values()))
    entries = [(meta.split()[2], path) for meta, path in (line.split("\t", 1) for line in listing.split("\0") if line)]
    attributes = attributes_at(repo, commit, [path for _, path in entries], "filter")
    pick = selector(params) if params else None
    wanted: dict[str, tuple[str, dict[str, tuple[int, str | None]]]] = {}
    for oid, path in entries:
        if attributes.get(path) != THETA_FILTER and not paths:
            continue
        metadata = loads_if_metadata(repo.read_blob(oid), f"{path} at {rev}")
        if metadata is None:
            continue
        names = [n for n in metadata.parameters if pick(n)] if pick is not None else None
        if names == []:
            continue
        wanted[path] = (oid, chain_objects(metadata, names))
    if params and not wanted:
        raise ThetaError(f"no parameter of a tracked file at {rev} matches {', '.join(repr(p) for p in params)}")
    for given, prefix in named.items() if not (params or everything) else ():
        if not any(path == prefix or path.startswith(prefix + "/") for path in wanted):
            raise ThetaError(f"{given}: no file Theta tracks there at {rev} (`git theta ls-files` lists them)")
    missing: dict[str, int] = {}
    for _, objects in wanted.values():
        missing.update({oid: size for oid, (size, _) in objects.items() if not store.has(oid)})
    corrupt: frozenset[str] = frozenset()
    if missing:
        result = fetch_objects(sorted(missing.items()), f"{len(wanted)} file(s) at {rev}", cwd=repo.cwd)
        corrupt = getattr(result, "corrupt_on_remote", frozenset())
    failed = []
    for path, (_, objects) in wanted.items():
        present = {o for o, (size, _) in objects.items() if (store.verify(o, size) if o in missing else store.has(o))}
        absent = [oid for oid in objects if oid not in present]  # what arrived counts once verified (sha256)
        if absent:
            failed.append(path)
        for oid in absent:
            owner = objects[oid][1]
            what = "its skeleton" if owner is None else f"parameter {owner!r}"
            why = "its copy on the remote is corrupt" if oid in corrupt else "the remote does not have it"
            print(f"theta: error: {path}: {what}: object {oid} did not arrive: {why}", file=sys.stderr)
    repo.close()
    if failed:
        raise ThetaError(
            f"{len(failed)} file(s) at {rev} could not be fetched completely: {', '.join(failed)}; the objects are"
            " neither in the local store nor on the LFS remote (were they pushed? is the remote reachable?)"
        )
    arrived = sum(size for oid, size in missing.items() if store.has(oid))
    print(
        f"theta: fetched {len(missing)} object(s), {human(arrived)}, for {len(wanted)} file(s) at {rev}",
        file=sys.stderr,
    )
    return 0


def checkout(repo: Repo, paths: list[str]) -> list[str]:
    """Rewrite tracked files that were left as metadata (a plugin or an object was missing)."""
    here = repo.cwd or Path.cwd()
    chosen: list[str] = []
    for given in paths:
        found = tracked_files(repo, [given])
        if not found:
            raise ThetaError(f"{given}: no file Theta tracks there in the index (`git theta ls-files` lists them)")
        chosen += [path for path in found if path not in chosen]
    redo = []
    for path in chosen if paths else tracked_files(repo):
        file = here / path
        if file.is_file():
            with open(file, "rb") as f:
                if looks_like_metadata(f.read(256)):
                    redo.append(path)
    for path in redo:
        (here / path).unlink()
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
        record: dict[str, object] = {"commit": commit, "short": short, "date": date, "subject": subject}
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
