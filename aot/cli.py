"""The `aotc` command line: export, verify and inspect models as standalone C."""
from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "export": "export a model function as a standalone C library (model.h, model.c, libs)",
    "verify": "run an exported library against the XLA backend and report differences",
    "inspect": "show the graph, passes, fusion groups, memory plan and generated C",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aotc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text, description=text)
    args = parser.parse_args(argv)
    print(f"aotc {args.command}: not built yet (issue 'aotc: export, verify and inspect'); "
          "the C backend and exporter land first", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
