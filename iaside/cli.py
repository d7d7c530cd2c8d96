"""Command line: parse, call the library, print. Subcommands live in ``iaside.commands``."""

from __future__ import annotations

import argparse
import importlib
import os
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


def _os_error(err: OSError) -> str:
    """One line for a file the system refused: which file, and why."""
    names = " -> ".join(str(n) for n in (err.filename, err.filename2) if n is not None)
    return f"{names}: {err.strerror or err} (check that the path exists, is of the right kind and can be written)"


def _stdout_closed() -> int:
    """The reader of our output went away (``iaside show | head``): stop quietly, like a tool
    killed by SIGPIPE, and keep Python from complaining while it flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


def main(argv: list[str] | None = None) -> int:
    apply_malloc_fix()
    from .errors import IasideError
    from .validate import check_command_arguments

    parser, modules = build_parser()
    args = parser.parse_args(argv)
    try:
        check_command_arguments(args)
        code = modules[args.command].run(args)
        sys.stdout.flush()
        return code
    except IasideError as err:
        print(f"iaside: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iaside: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _stdout_closed()
    except OSError as err:
        if err.filename is None:
            raise
        print(f"iaside: error: {_one_line(IasideError(_os_error(err)))}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            "iaside: error: out of memory; use a smaller --batch-size, fewer --workers or smaller images",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
