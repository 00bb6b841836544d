"""Write kernel/man/git-theta.1 (the manual `git help theta` shows) from the command line's parser.

Usage: python scripts/manpage.py [--check]   (--check exits 1 when the page is out of date)
"""

from __future__ import annotations

import sys
from pathlib import Path

from theta.app.manpage import render

TARGET = Path(__file__).resolve().parents[1] / "kernel" / "man" / "git-theta.1"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is out of date: run `python scripts/manpage.py`", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
