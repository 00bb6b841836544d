"""`python -m theta_format_tensorflow.refresh_index ckpt-1.index`: make an index agree with its shards.

Use it after a merge or checkout produced data shards whose values differ from what the
committed index records (TensorFlow then reports a checksum mismatch on restore).
"""

from __future__ import annotations

import sys
from pathlib import Path

from theta.errors import ThetaError
from theta_format_tensorflow.tf_checkpoint import refresh_index


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m theta_format_tensorflow.refresh_index PATH.index ...", file=sys.stderr)
        return 2
    for name in args:
        try:
            changed = refresh_index(Path(name))
        except (ThetaError, OSError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: {len(changed)} tensor CRC(s) updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
