"""The ``bugcheck`` console script (placeholder until the front end lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("bugcheck: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
