"""iaside show: print a finished result."""
from pathlib import Path

NAME = "show"
HELP = "print a finished result: the estimator, the band table and its interpretation (or why there is none)"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", type=Path, help="the --out folder of a run")


def run(args) -> int:
    from ..result import Result

    print(Result.load(args.run_dir).table())
    return 0
