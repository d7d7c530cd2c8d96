"""iaside show: print a finished result."""

from pathlib import Path

NAME = "show"
HELP = "print a finished result: the estimator, the band table and its interpretation (or why there is none)"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", type=Path, help="the --out folder of a run")
    parser.add_argument(
        "--interactions",
        action="store_true",
        help="also the M×M pairwise Shapley interaction index of the bands (exact runs)",
    )
    parser.add_argument(
        "--band-limited",
        action="store_true",
        help="also v and top-1 accuracy of the low-pass and high-pass images at each cut-off (exact runs)",
    )


def run(args) -> int:
    from ..bandlimited import band_limited_table
    from ..errors import IasideError
    from ..interactions import interactions_table
    from ..result import Result

    result = Result.load(args.run_dir)
    print(result.table())
    for wanted, view, show in (
        (
            args.interactions,
            result.interactions,
            lambda v: interactions_table(v["index"], result.config.get("confidence", 0.95)),
        ),
        (args.band_limited, result.band_limited, band_limited_table),
    ):
        if not wanted:
            continue
        if view is None:
            raise IasideError(
                f"{args.run_dir} has no band interactions or band-limited views: they come from exact "
                "runs (--estimator exact; interactions up to 12 bands) made by this version; rerun it "
                "to get them"
            )
        print()
        print(show(view))
    return 0
