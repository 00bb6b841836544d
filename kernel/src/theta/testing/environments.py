"""Fresh virtual environments that hold only what a plugin declares.

The kernel and `theta-update-dense` (the root of every chain) are always installed. Every
theta distribution comes from where the running environment got it: the project directory
of a local or editable install (read from the distribution's `direct_url.json`; copied
first, so that building leaves nothing in the work tree), else `name==version` from the
package index. Every other package is held to the version the running environment has,
through a constraints file: a fresh environment resolves to what the tests ran with, from
the same wheels (a framework's local CPU build rather than the newest release).

A package from an index is not installed again but linked from the running environment (a
framework is a gigabyte that pip would unpack, and that Python would compile on import, for
each environment): a directory outside the environment's own site-packages holds links to its
top-level files and is put on the path by a `.pth` file, so pip finds it installed, at the
same version, and never changes it. Only what the installed projects declare, and what that
requires in turn, is linked.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: requirements are read from the installed metadata
    tomllib = None  # type: ignore[assignment]

ALWAYS = ("theta-kernel", "theta-update-dense")
LEFTOVERS = ("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache")
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution a requirement string names (`theta-format-torch[torch]>=0.1` -> `theta-format-torch`)."""
    found = _NAME.match(requirement)
    if found is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return canonical(found.group(1))


def project_dir(dist: metadata.Distribution) -> Path | None:
    """The directory `dist` was installed from, for a local or editable install; None otherwise."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    info = json.loads(text)
    url = urlparse(info.get("url", ""))
    if "dir_info" not in info or url.scheme != "file":
        return None
    return Path(unquote(url.path))


def local_project(name: str) -> Path | None:
    """The project directory the running environment installed `name` from, if it is a local install.

    An editable install can be found twice (its dist-info, and the egg-info in its source
    folder when that is on the path): any record that names a directory counts."""
    return next((p for p in map(project_dir, _records(name)) if p is not None), None)


def _records(name: str) -> list[metadata.Distribution]:
    return _installed().get(canonical(name), [])


@cache
def _installed() -> dict[str, list[metadata.Distribution]]:
    """The running environment's distribution records by name, in path order (read once)."""
    found: dict[str, list[metadata.Distribution]] = {}
    for dist in metadata.distributions():
        found.setdefault(canonical(dist.metadata["Name"] or ""), []).append(dist)
    return found


def distribution_source(name: str) -> Path | str:
    """What installs `name` as the running environment has it: its project directory, or `name==version`."""
    project = local_project(name)
    if project is not None:
        return project
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        raise AssertionError(f"{name} is not installed in the running environment ({sys.prefix})") from None


def build_requirements(project: Path) -> list[str]:
    """What building `project` needs (its `[build-system] requires`)."""
    if tomllib is None:
        return ["setuptools>=68"]
    declared = tomllib.loads((project / "pyproject.toml").read_text()).get("build-system", {})
    return list(declared.get("requires", ["setuptools>=40.8.0"]))


def project_name(project: Path) -> str:
    """The distribution name a project directory declares."""
    if tomllib is not None:
        return canonical(tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"])
    return canonical(_installed_from(project).metadata["Name"])


def declared_requirements(project: Path, extra: str | None = None) -> list[str]:
    """The requirement names `project` declares: its dependencies, or those of its `extra`."""
    if tomllib is not None:
        table = tomllib.loads((project / "pyproject.toml").read_text()).get("project", {})
        listed = (
            table.get("dependencies", []) if extra is None else table.get("optional-dependencies", {}).get(extra, [])
        )
        return [requirement_name(r) for r in listed]
    return _installed_requirements(project, extra)


def _installed_from(project: Path) -> metadata.Distribution:
    for dist in metadata.distributions():
        found = project_dir(dist)
        if found is not None and found.resolve() == project.resolve():
            return dist
    raise AssertionError(
        f"cannot read {project / 'pyproject.toml'}: install the project (pip install -e) or use Python 3.11+"
    )


def _installed_requirements(project: Path, extra: str | None) -> list[str]:
    names = []
    for line in _installed_from(project).requires or ():
        marker = _EXTRA.search(line)
        if (marker.group(1) if marker else None) == extra:
            names.append(requirement_name(line))
    return names


def running_versions() -> list[str]:
    """`name==version` of every package the running environment has from an index (not from a directory)."""
    return sorted(
        f"{name}=={records[0].version}"
        for name, records in _installed().items()
        if name and all(project_dir(d) is None for d in records)
    )


class FreshEnvironment:
    """A new virtual environment under `root`; `install` adds projects and requirements to it.

    The running interpreter's pip installs into it (`pip --python`), so the environment starts
    without pip's own bootstrap; pip is then added at the running environment's version. Local
    projects are built without build isolation, after their declared build requirements are
    installed here once: that saves a temporary build environment per project.
    """

    def __init__(self, root: Path, hold_versions: bool = True) -> None:
        self.root = root
        self.bin_dir = root / "venv" / "bin"
        self.installed: set[str] = set()
        self.timings: list[tuple[str, float]] = []  # what took how long, in seconds
        self._sources = root / "src"
        self._build_requirements: set[str] = set()
        self._outer_pip = importlib.util.find_spec("pip") is not None
        self._linked_dir = root / "linked"
        self.linked: set[str] = set()
        start = time.monotonic()
        venv = [sys.executable, "-m", "venv", *(["--without-pip"] if self._outer_pip else []), str(root / "venv")]
        subprocess.run(venv, check=True, capture_output=True)
        self.timings.append(("venv", time.monotonic() - start))
        self.constraints = root / "constraints.txt"
        self.constraints.write_text("\n".join(running_versions() if hold_versions else []) + "\n")
        if self._outer_pip:
            self.link(["pip"])
            if "pip" not in self.linked:
                self._pip(f"pip=={metadata.version('pip')}")

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    def env(self) -> dict[str, str]:
        """Environment variables for running this environment's programs."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", "")])
        return env

    def copy(self, project: Path, keep_tests: bool = False) -> Path:
        """A copy of a project directory, to build outside its work tree."""
        ignore = LEFTOVERS if keep_tests else (*LEFTOVERS, "tests")
        target = self._sources / project.name
        n = 1
        while target.exists():
            n += 1
            target = self._sources / f"{project.name}-{n}"
        return Path(shutil.copytree(project, target, ignore=shutil.ignore_patterns(*ignore)))

    def local_sources(self, names: Iterable[str]) -> list[Path]:
        """Copies of the project directories of `names`, and of the local projects they need in turn,
        where the running environment installed them from a directory; leaves out those installed here."""
        found: dict[str, Path] = {}
        todo = [canonical(n) for n in names]
        while todo:
            name = todo.pop()
            project = local_project(name)
            if name in found or name in self.installed or project is None:
                continue
            found[name] = project
            todo.extend(declared_requirements(project))
        self.installed.update(found)
        return [self.copy(p) for p in found.values()]

    def install(self, *items: str | Path) -> None:
        """`pip install` of requirement strings and project directories (`DIR` or `DIR[extra]`)."""
        projects = [project for project, _ in map(_project_item, items) if project is not None]
        needed = {r for p in projects for r in build_requirements(p)} - self._build_requirements
        self.link([*map(requirement_name, needed), *_wanted(items)])
        unlinked = sorted(r for r in needed if requirement_name(r) not in self.linked)
        if unlinked:
            self._pip(*unlinked)
        self._build_requirements |= needed
        self._pip("--no-build-isolation", *items)

    def link(self, names: Iterable[str]) -> None:
        """Link the packages from an index that `names` need, as the running environment has them, into this one."""
        wanted = [d for d in _closure(names) if d not in self.linked]
        if not wanted:
            return
        start = time.monotonic()
        self._linked_dir.mkdir(exist_ok=True)
        for name in wanted:
            dist = _records(name)[0]
            site = Path(str(dist.locate_file("")))
            for top in sorted({Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}):
                link = self._linked_dir / top
                if not link.exists() and (site / top).exists():
                    link.symlink_to(site / top)
            self.linked.add(name)
        (self.site_packages() / "theta-linked.pth").write_text(f"{self._linked_dir}\n")
        self.timings.append((f"link {' '.join(sorted(wanted))}", time.monotonic() - start))

    def site_packages(self) -> Path:
        found = list((self.root / "venv" / "lib").glob("python*/site-packages"))
        if len(found) != 1:
            raise AssertionError(f"no site-packages directory in {self.root / 'venv'}")
        return found[0]

    def _pip(self, *args: str | Path) -> None:
        """One `pip install` into this environment, under the constraints."""
        if self._outer_pip:
            pip = [sys.executable, "-m", "pip", "--python", str(self.python)]
        else:
            pip = [str(self.python), "-m", "pip"]
        options = ["-q", "--disable-pip-version-check", "-c", str(self.constraints)]
        command = [*pip, "install", *options, *map(str, args)]
        start = time.monotonic()
        proc = subprocess.run(command, capture_output=True, text=True, env=self.env())
        names = " ".join(Path(str(a)).name for a in args if not str(a).startswith("-"))
        self.timings.append((f"pip install {names}", time.monotonic() - start))
        if proc.returncode != 0:
            raise AssertionError(f"pip install in a fresh environment failed:\n{proc.stdout}\n{proc.stderr}")

    def install_project(
        self, project: Path, extra: str | None = None, copy: bool = True, origin: Path | None = None
    ) -> None:
        """Install `project` (with `extra`) and, from their directories, the local projects it needs.

        `origin`, the directory `project` was copied from, is where its requirements are read
        when Python lacks tomllib (they then come from the metadata of its editable install)."""
        declared = origin if origin is not None and tomllib is None else project
        self.installed.add(project_name(declared))
        names = [*ALWAYS, *declared_requirements(declared)]
        if extra is not None:
            names += declared_requirements(declared, extra)
        sources = self.local_sources(names)
        missing = [distribution_source(n) for n in ALWAYS if n not in self.installed and local_project(n) is None]
        self.installed.update(ALWAYS)
        target = self.copy(project) if copy else project
        self.install(*sources, *missing, f"{target}[{extra}]" if extra else target)


def _project_item(item: str | Path) -> tuple[Path | None, str | None]:
    """(project directory, extra) of an install item `DIR` or `DIR[extra]`; (None, None) for a requirement."""
    project, _, extra = str(item).partition("[")
    return (Path(project), extra.rstrip("]") or None) if Path(project).is_dir() else (None, None)


def _wanted(items: Iterable[str | Path]) -> list[str]:
    """The distribution names that installing `items` (requirements, `DIR` or `DIR[extra]`) asks for directly."""
    names = []
    for item in items:
        project, extra = _project_item(item)
        if project is None:
            names.append(requirement_name(str(item)))
            continue
        names += declared_requirements(project)
        if extra:
            names += declared_requirements(project, extra)
    return names


def _closure(names: Iterable[str]) -> list[str]:
    """`names` and what they require in turn (extras left out), as the running environment has them
    from an index; local projects are installed, not linked, and are not followed."""
    found: list[str] = []
    todo = [canonical(n) for n in names]
    while todo:
        name = todo.pop()
        records = _records(name)
        if name in found or not records or any(project_dir(d) is not None for d in records):
            continue
        found.append(name)
        todo += [requirement_name(r) for r in records[0].requires or () if not _EXTRA.search(r)]
    return found


def fresh_environment(root: Path, sources: Sequence[Path], requirements: Sequence[str] = ()) -> Path:
    """A new virtual environment with only the kernel, `theta-update-dense`, the projects `sources`
    (copied first, with the local projects they need) and `requirements`; returns its bin directory."""
    env = FreshEnvironment(root)
    env.installed.update(project_name(p) for p in sources)
    projects = [env.copy(p) for p in sources]
    needed = [*ALWAYS, *(n for p in sources for n in declared_requirements(p))]
    local = env.local_sources(needed)
    missing = [distribution_source(n) for n in ALWAYS if n not in env.installed]
    env.install(*local, *missing, *projects, *requirements)
    return env.bin_dir
