"""Fresh virtual environments that hold only what a plugin declares.

The kernel and `theta-update-dense` (the root of every chain) are always installed. Every
theta distribution comes from where the running environment got it: the project directory
of a local or editable install (read from the distribution's `direct_url.json`; copied
first, so that building leaves nothing in the work tree), else `name==version` from the
package index. Every other package is held to the version the running environment has,
through a constraints file: a fresh environment resolves to what the tests ran with, from
the same wheels (a framework's local CPU build rather than the newest release).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: requirements are read from the installed metadata
    tomllib = None  # type: ignore[assignment]

ALWAYS = ("theta-kernel", "theta-update-dense")
LEFTOVERS = ("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache")
_TOOLING = {"pip", "setuptools", "wheel"}
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
    """The project directory the running environment installed `name` from, if it is a local install."""
    try:
        return project_dir(metadata.distribution(name))
    except metadata.PackageNotFoundError:
        return None


def distribution_source(name: str) -> Path | str:
    """What installs `name` as the running environment has it: its project directory, or `name==version`."""
    project = local_project(name)
    if project is not None:
        return project
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        raise AssertionError(f"{name} is not installed in the running environment ({sys.prefix})") from None


def declared_requirements(project: Path, extra: str | None = None) -> list[str]:
    """The requirement names `project` declares: its dependencies, or those of its `extra`."""
    if tomllib is not None:
        declared = tomllib.loads((project / "pyproject.toml").read_text()).get("project", {})
        listed = (
            declared.get("dependencies", [])
            if extra is None
            else declared.get("optional-dependencies", {}).get(extra, [])
        )
        return [requirement_name(r) for r in listed]
    return _installed_requirements(project, extra)


def _installed_requirements(project: Path, extra: str | None) -> list[str]:
    for dist in metadata.distributions():
        if project_dir(dist) == project.resolve():
            names = []
            for line in dist.requires or ():
                marker = _EXTRA.search(line)
                if (marker.group(1) if marker else None) == extra:
                    names.append(requirement_name(line))
            return names
    raise AssertionError(f"cannot read the requirements of {project}: install it (pip install -e) or use Python 3.11+")


def running_versions() -> list[str]:
    """`name==version` of every package the running environment has from an index (not from a directory)."""
    pins = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) not in _TOOLING and project_dir(dist) is None:
            pins[canonical(name)] = f"{canonical(name)}=={dist.version}"
    return sorted(pins.values())


class FreshEnvironment:
    """A new virtual environment under `root`; `install` adds projects and requirements to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin_dir = root / "venv" / "bin"
        self.installed: set[str] = set()
        self._sources = root / "src"
        subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, capture_output=True)
        self.constraints = root / "constraints.txt"
        self.constraints.write_text("\n".join(running_versions()) + "\n")

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
        """`pip install` of requirement strings and project directories, under the constraints."""
        args = [str(self.python), "-m", "pip", "install", "-q", "-c", str(self.constraints), *map(str, items)]
        proc = subprocess.run(args, capture_output=True, text=True, env=self.env())
        if proc.returncode != 0:
            raise AssertionError(f"pip install in a fresh environment failed:\n{proc.stdout}\n{proc.stderr}")

    def install_project(self, project: Path, extra: str | None = None, copy: bool = True) -> None:
        """Install `project` (with `extra`) and, from their directories, the local projects it needs."""
        names = [*ALWAYS, *declared_requirements(project)]
        if extra is not None:
            names += declared_requirements(project, extra)
        sources = self.local_sources(names)
        missing = [distribution_source(n) for n in ALWAYS if n not in self.installed and local_project(n) is None]
        self.installed.update(ALWAYS)
        target = self.copy(project) if copy else project
        self.install(*sources, *missing, f"{target}[{extra}]" if extra else target)


def fresh_environment(root: Path, sources: Sequence[Path], requirements: Sequence[str] = ()) -> Path:
    """A new virtual environment with only the kernel, `theta-update-dense`, the projects `sources`
    (copied first, with the local projects they need) and `requirements`; returns its bin directory."""
    env = FreshEnvironment(root)
    projects = [env.copy(p) for p in sources]
    needed = [*ALWAYS, *(n for p in sources for n in declared_requirements(p))]
    local = env.local_sources(needed)
    missing = [distribution_source(n) for n in ALWAYS if n not in env.installed]
    env.install(*local, *missing, *projects, *requirements)
    return env.bin_dir
