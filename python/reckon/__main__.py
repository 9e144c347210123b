"""`python -m reckon ...`: reckon's command line, the same as the `reckon` binary's."""

import sys

from . import _native


def main() -> None:
    sys.exit(_native.cli(["reckon", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
