"""``python -m fastconv <command>``."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print version, compiler, OpenMP, threads and BLAS")
    args = parser.parse_args(argv)
    if args.command == "info":
        from . import show_config

        show_config()
    return 0


if __name__ == "__main__":
    sys.exit(main())
