"""`git theta fsck`: whether every object the checkpoints of some commits need is there and sound.

For each metadata file in the commits checked, every object it names must be in the local
store (or, with `remote=True`, on the remote) and hash to its oid, and every parameter's
chain must rebuild the tensor its hash names. Each problem is reported with the file, the
parameter, the oid and where a good copy can come from; `repair=True` fetches from the
remote, and rebuilds from the work tree's checkpoints, what it can.

The listing of what commits need (`needed_objects`) is also what `git theta gc` keeps.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from attrs import frozen

from theta.app.tracking import at_top, tracked_files
from theta.checkpoints import choose_format
from theta.errors import ThetaError
from theta.formats import open_file_source
from theta.git.lfs import fetch_objects
from theta.git.repo import Repo, run_git
from theta.metadata import HASH_PREFIX, ArrayObject, Metadata, Parameter, loads, looks_like_metadata
from theta.session import Session
from theta.store import codecs
from theta.store.objects import ObjectStore, temp_prefix
from theta.tensors import Tensor, dtype

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\n"
MAX_METADATA = 256 << 20  # blobs larger than this are not read as metadata files
# Commits an operation in progress needs, beside the refs, the reflogs and the index.
OPERATION_HEADS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "REBASE_HEAD", "ORIG_HEAD")


@frozen(kw_only=True)
class Use:
    """One use of an object: the file (at `label`, a revision) and the parameter (None: the skeleton)."""

    label: str
    path: str
    parameter: str | None
    size: int

    def describe(self) -> str:
        where = f"{self.path} ({self.label})" if self.label else self.path
        return f"{where}: {'skeleton' if self.parameter is None else f'parameter {self.parameter!r}'}"


@frozen(kw_only=True)
class Needed:
    """What some commits need: each object with its uses, the parameters to rebuild, the unreadable files."""

    objects: dict[str, list[Use]]
    parameters: dict[tuple[str, str, str, tuple[str, ...]], tuple[str, Parameter]]
    lfs_objects: set[str]
    unreadable: list[str]
    files: int


# -- what commits need ---------------------------------------------------------------------


def all_roots(repo: Repo) -> list[str]:
    """rev-list arguments for everything reachable: refs, reflogs, the index, operations in progress."""
    roots = ["--all", "--reflog", "--indexed-objects"]
    for name in OPERATION_HEADS:
        sha = repo.git("rev-parse", "--verify", "-q", f"{name}^{{commit}}", check=False).strip()
        if sha:
            roots.append(sha)
    return roots


def blobs(repo: Repo, rev_args: Sequence[str]) -> dict[str, str]:
    """blob id -> a path, for every blob the rev-list arguments reach."""
    listing = repo.git("rev-list", "--objects", *rev_args)
    named: dict[str, str] = {}
    for line in listing.splitlines():
        sha, _, path = line.partition(" ")
        if path:
            named.setdefault(sha, path)
    if not named:
        return {}
    checked = repo.git(
        "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)", input="\n".join(named).encode()
    )
    found = {}
    for line in checked.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] == "blob" and int(fields[2]) <= MAX_METADATA:
            found[fields[0]] = named[fields[0]]
    return found


def needed_objects(repo: Repo, revs: Sequence[str], everything: bool) -> Needed:
    """The objects the metadata files of `revs` (or of everything reachable) name, with their uses."""
    groups = [("", all_roots(repo))] if everything else [(rev, ["--no-walk", _commit(repo, rev)]) for rev in revs]
    objects: dict[str, list[Use]] = {}
    parameters: dict[tuple[str, str, str, tuple[str, ...]], tuple[str, Parameter]] = {}
    lfs_objects: set[str] = set()
    unreadable: list[str] = []
    seen: set[str] = set()
    files = 0
    for label, args in groups:
        for sha, path in blobs(repo, args).items():
            if sha in seen:
                continue
            seen.add(sha)
            data = repo.read_blob(sha) or b""
            if data.startswith(LFS_POINTER):
                lfs_objects.update(_pointer_oid(data))
                continue
            if not looks_like_metadata(data[:256]):
                continue
            files += 1
            where = f"{path} ({label})" if label else path
            try:
                metadata = loads(data, where)
            except ThetaError as exc:
                unreadable.append(str(exc))
                continue
            _add_uses(metadata, label, path, objects, parameters)
    return Needed(objects=objects, parameters=parameters, lfs_objects=lfs_objects, unreadable=unreadable, files=files)


def _commit(repo: Repo, rev: str) -> str:
    sha = repo.git("rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False).strip()
    if not sha:
        raise ThetaError(f"{rev!r} is not a commit of this repository")
    return sha


def _pointer_oid(data: bytes) -> Iterator[str]:
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("oid sha256:"):
            yield line.removeprefix("oid sha256:").strip()


def _add_uses(
    metadata: Metadata,
    label: str,
    path: str,
    objects: dict[str, list[Use]],
    parameters: dict[tuple[str, str, str, tuple[str, ...]], tuple[str, Parameter]],
) -> None:
    for oid, use in metadata.objects().items():
        objects.setdefault(oid, []).append(Use(label=label, path=path, parameter=use.parameter, size=use.size))
    for name, param in metadata.parameters.items():
        oids = tuple(r.oid for s in param.steps for r in s.objects.values())
        parameters.setdefault((path, name, param.hash, oids), (label, param))


# -- checking ------------------------------------------------------------------------------


@frozen(kw_only=True)
class Problem:
    oid: str | None
    use: Use | None
    what: str  # "missing", "corrupt", "missing on the remote", "corrupt on the remote", "chain", "unreadable"
    detail: str = ""


def check_local(store: ObjectStore, needed: Needed) -> list[Problem]:
    problems = []
    for oid, uses in needed.objects.items():
        if store.verify(oid, uses[0].size):
            continue
        problems.append(Problem(oid=oid, use=uses[0], what="corrupt" if store.has(oid) else "missing"))
    return problems


def check_remote(repo: Repo, needed: Needed, oids: Iterable[str]) -> tuple[set[str], set[str]]:
    """(corrupt, missing) of `oids` on the remote: each is downloaded into a scratch repository and verified."""
    wanted = [(oid, needed.objects[oid][0].size) for oid in oids]
    if not wanted:
        return set(), set()
    with scratch_repository(repo) as scratch:
        failed = fetch_objects(wanted, "a check of the remote's copies", cwd=scratch)
        corrupt = set(getattr(failed, "corrupt_on_remote", ()))
        probe = ObjectStore(scratch / ".git" / "lfs")
        bad = {oid for oid, size in wanted if not probe.verify(oid, size)}
    return corrupt & bad, bad - corrupt


@contextlib.contextmanager
def scratch_repository(repo: Repo) -> Iterator[Path]:
    """An empty repository that reaches the same Git LFS endpoint, so git-lfs downloads into its store.

    It includes this repository's configuration (remotes, credentials, lfs settings) and its
    `.lfsconfig`, and names the endpoint git-lfs uses here; its own store is empty, so every
    object asked for comes from the remote.
    """
    endpoint = _endpoint(repo)
    parent = repo.theta_dir / "tmp"
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=temp_prefix("fsck"), dir=parent))
    try:
        run_git("init", "-q", str(path))
        scratch = Repo(path)
        scratch.git("config", "include.path", str(repo.git_dir / "config"))
        scratch.git("config", "lfs.storage", str(path / ".git" / "lfs"))
        scratch.git("config", "core.worktree", str(path))
        if endpoint.startswith(("http://", "https://")):
            scratch.git("config", "lfs.url", endpoint)
        elif endpoint:
            scratch.git("config", "remote.theta-check.url", endpoint)
            scratch.git("config", "remote.lfsdefault", "theta-check")
        lfsconfig = repo.top_level / ".lfsconfig"
        if lfsconfig.is_file():
            shutil.copyfile(lfsconfig, path / ".lfsconfig")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _endpoint(repo: Repo) -> str:
    for line in repo.git("lfs", "env", check=False).splitlines():
        if line.startswith("Endpoint="):
            return line.removeprefix("Endpoint=").split(" (auth=")[0].strip()
    return ""


def check_chains(session: Session, needed: Needed, sound: set[str]) -> list[Problem]:
    """Rebuild every parameter whose objects are all sound and that is more than its own stored bytes."""
    problems = []
    for (path, name, _, oids), (label, param) in needed.parameters.items():
        if not all(oid in sound for oid in oids) or _stored_whole(param):
            continue
        try:
            session.params.load(param, path, name, recheck=True)
        except ThetaError as exc:
            use = Use(label=label, path=path, parameter=name, size=0)
            problems.append(Problem(oid=None, use=use, what="chain", detail=str(exc)))
    return problems


def _stored_whole(param: Parameter) -> bool:
    """A single raw dense step whose object is the tensor: verifying the object verified the tensor."""
    own = param.hash.removeprefix(HASH_PREFIX)
    return len(param.steps) == 1 and any(r.oid == own and r.codec == "raw" for r in param.steps[0].objects.values())


# -- repairing -----------------------------------------------------------------------------


def rebuild_from_work_tree(session: Session, needed: Needed, oids: set[str]) -> set[str]:
    """Rewrite objects that hold a whole tensor from the work tree's checkpoints; returns those rebuilt.

    An object is rebuilt when a tracked file of the work tree holds a tensor whose sha256 is the
    parameter's and that, stored the way the object says (its codec), gives the object's oid.
    """
    wanted: dict[str, list[ArrayObject]] = {}  # tensor hash -> the lost objects that hold it whole
    for _, param in needed.parameters.values():
        record = _whole_tensor_object(param)
        if record is not None and record.oid in oids:
            wanted.setdefault(param.hash.removeprefix(HASH_PREFIX), []).append(record)
    rebuilt: set[str] = set()
    top = session.repo.top_level
    with at_top(session.repo) as from_top:
        paths = tracked_files(from_top) if wanted else []  # every tracked file, wherever fsck runs
    for path in paths:
        file = top / path
        if not file.is_file():
            continue
        try:
            with open_file_source(file, path) as source:
                if not source.head or looks_like_metadata(source.head):
                    continue
                fmt = choose_format(session.registry, path, source.head, session.format_override(path))
                for _, tensor in fmt.read(source).parameters:
                    for record in wanted.pop(tensor.sha256(), []):
                        stored = _stored_form(record, tensor)
                        if stored is not None and hashlib.sha256(stored).hexdigest() == record.oid:
                            session.store.put(stored, oid=record.oid)
                            rebuilt.add(record.oid)
        except (ThetaError, OSError) as exc:
            print(f"theta: fsck: warning: {path}: cannot read it to rebuild objects: {exc}", file=sys.stderr)
    return rebuilt


def _whole_tensor_object(param: Parameter) -> ArrayObject | None:
    """The object of a parameter stored whole in one step (the tensor itself, under some codec)."""
    if len(param.steps) != 1 or len(param.steps[0].objects) != 1:
        return None
    record = next(iter(param.steps[0].objects.values()))
    return record if (record.dtype, record.shape) == (param.dtype, param.shape) else None


def _stored_form(record: ArrayObject, tensor: Tensor) -> bytes | memoryview | None:
    """The tensor's bytes as its object stores them (codecs are deterministic), or None."""
    if record.codec == "raw":
        return tensor.data
    if record.codec == "zstd":
        return codecs.encode(tensor.data)[1]
    encode_dense = getattr(codecs, "encode_dense", None)
    if encode_dense is None:
        return None
    codec, stored = encode_dense(tensor.data, dtype(tensor.dtype).itemsize)
    return stored if codec == record.codec else None


# -- the command ---------------------------------------------------------------------------


def fsck(repo: Repo, revs: Sequence[str], everything: bool, remote: bool, repair: bool) -> int:
    session = Session(repo)
    store = session.store
    for path in store.sweep():
        print(f"theta: fsck: removed {path.name}, left by a process that was killed")
    if not revs and not everything and not repo.git("rev-parse", "--verify", "-q", "HEAD", check=False).strip():
        print("theta: fsck: no commit yet: nothing to check")
        return 0
    needed = needed_objects(repo, revs or ["HEAD"], everything)
    problems = [Problem(oid=None, use=None, what="unreadable", detail=line) for line in needed.unreadable]
    local = check_local(store, needed)
    if repair:
        local = _repair(session, needed, local)
    problems += local
    bad_here = {p.oid for p in local}
    if remote:
        corrupt, missing = check_remote(repo, needed, needed.objects)
    else:
        corrupt, missing = check_remote(repo, needed, bad_here)  # to say where a good copy is
    if remote:
        for oid in sorted(corrupt | missing):
            what = "corrupt on the remote" if oid in corrupt else "missing on the remote"
            problems.append(Problem(oid=oid, use=needed.objects[oid][0], what=what))
    sound = set(needed.objects) - bad_here
    problems += check_chains(session, needed, sound)
    for problem in problems:
        print(f"theta: fsck: {_report(problem, needed, corrupt, missing, bad_here)}")
    checked = f"{needed.files} metadata file(s), {len(needed.objects)} object(s)"
    checked += " here and on the remote" if remote else ""
    session.close()
    if problems:
        print(f"theta: fsck: {len(problems)} problem(s) in {checked}")
        return 1
    print(f"theta: fsck: {checked}: all sound")
    return 0


def _repair(session: Session, needed: Needed, local: list[Problem]) -> list[Problem]:
    store = session.store
    for problem in local:
        if problem.what == "corrupt" and problem.oid is not None:
            store.discard(problem.oid)  # so that a good copy can take its place
    wanted = [(p.oid, needed.objects[p.oid][0].size) for p in local if p.oid is not None]
    if wanted:
        fetch_objects(wanted, "repairs", cwd=session.repo.cwd)
    left = {oid for oid, size in wanted if not store.verify(oid, size)}
    left -= rebuild_from_work_tree(session, needed, left)
    for problem in local:
        if problem.oid not in left:
            print(f"theta: fsck: repaired {problem.oid} of {problem.use.describe() if problem.use else '?'}")
    return [p for p in local if p.oid in left]


def _report(problem: Problem, needed: Needed, corrupt: set[str], missing: set[str], bad_here: set[str]) -> str:
    where = problem.use.describe() if problem.use else ""
    if problem.what == "unreadable":
        return problem.detail
    if problem.what == "chain":
        return f"{where}: its chain does not rebuild the tensor its hash names: {problem.detail}"
    oid = problem.oid or ""
    if problem.what in ("missing on the remote", "corrupt on the remote"):
        here = "the local copy is damaged too" if oid in bad_here else "a good copy is here: push it again"
        advice = (
            "have the remote's copy deleted, then push again from here"
            if problem.what == "corrupt on the remote" and oid not in bad_here
            else here
        )
        return f"{where}: object {oid} is {problem.what}; {advice}"
    state = "corrupt in the local store" if problem.what == "corrupt" else "missing from the local store"
    if oid in corrupt:
        source = "the remote's copy is corrupt too"
    elif oid in missing:
        source = "the remote does not have it either"
    else:
        source = "a good copy is on the remote: `git theta fsck --repair` fetches it"
    rebuild = any((r := _whole_tensor_object(p)) is not None and r.oid == oid for _, p in needed.parameters.values())
    if rebuild and problem.use is not None:
        source += f"; re-adding the checkpoint (`git add {problem.use.path}`) from a good copy rewrites it"
    return f"{where}: object {oid} is {state}; {source}"
