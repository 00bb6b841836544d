"""Build a wheel of every distribution, and of what they depend on, into one directory (`make dist`).

Usage: python scripts/dist.py [OUT]   (default: dist/)

Then `pip install --no-index --find-links OUT theta-vcs` (or `"theta-vcs[all]"`) installs
Theta with no network. Theta's own wheels are built from this checkout; the third-party
requirements they declare (frameworks excepted: no extra asks for one) are fetched once,
as wheels, by pip.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def distributions(root: Path = ROOT) -> list[Path]:
    """Every distribution of the repository: the kernel, each plugin, and the theta-vcs meta-distribution."""
    plugins = sorted(p.parent for p in root.glob("plugins/*/*/pyproject.toml"))
    return [root / "kernel", *plugins, root / "packaging" / "theta-vcs"]


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def requirements(wheel: Path) -> list[str]:
    """The Requires-Dist of a wheel that are neither Theta's own distributions nor behind an extra."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode())
    found = []
    for requirement in metadata.get_all("Requires-Dist") or []:
        if "extra ==" in requirement or requirement.lower().startswith("theta-"):
            continue
        found.append(requirement.split(";")[0].strip())
    return found


def build(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), *map(str, distributions()))
    ours = sorted(out.glob("theta_*.whl"))
    third_party = sorted({r for wheel in ours for r in requirements(wheel)})
    if third_party:
        pip("wheel", "-q", "-w", str(out), *third_party)
    return ours


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "dist"
    built = build(out.resolve())
    print(f"{len(built)} Theta wheels and their dependencies in {out}; install with")
    print(f"  pip install --no-index --find-links {out} theta-vcs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
