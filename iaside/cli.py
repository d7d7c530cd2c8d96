"""Command line: parse, call the library, print. Subcommands live in ``iaside.commands``."""
from __future__ import annotations

import argparse
import importlib
import sys

from .runtime import apply_malloc_fix


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    from .commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="iaside", description="I-ASIDE: spectral importance of an image classifier by exact Shapley values."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name in COMMANDS:
        module = importlib.import_module(f"iaside.commands.{name}")
        module.add_arguments(sub.add_parser(module.NAME, help=module.HELP, description=module.HELP))
        modules[module.NAME] = module
    return parser, modules


def _one_line(err: Exception) -> str:
    """The message itself, also when a data-loader worker wrapped it in its traceback."""
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split("IasideError: ", 1)[-1]
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    apply_malloc_fix()
    from .errors import IasideError

    parser, modules = build_parser()
    args = parser.parse_args(argv)
    try:
        return modules[args.command].run(args)
    except IasideError as err:
        print(f"iaside: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iaside: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
