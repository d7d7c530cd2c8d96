"""iaside leaderboard: rank models analysed on the same data with the same configuration."""

from __future__ import annotations

NAME = "leaderboard"
HELP = "rank models by robustness score, one board per data set and configuration"


def add_arguments(parser) -> None:
    from .runs import add_store_argument

    add_store_argument(parser)
    parser.add_argument("--data", help="only data sets whose description contains this text")
    parser.add_argument("--model", help="only models whose spec contains this text")
    parser.add_argument("--preset", help="only this preset ('none' = runs without a preset)")
    parser.add_argument(
        "--by",
        choices=["score", "score_signed"],
        default="score",
        help="rank by the paper's score (default) or the signed score",
    )


def run(args) -> int:
    from ..config import DataConfig
    from ..report.loading import short_data
    from ..store import leaderboard, store_path
    from .runs import config_text, format_table, interval

    boards = leaderboard(args.store, model=args.model, data=args.data, preset=args.preset, by=args.by)
    if not boards:
        print(f"no recorded runs match in {store_path(args.store)}")
        return 0
    for k, board in enumerate(boards):
        if k:
            print()
        print(
            f"{short_data(board['data_spec'])}  N={board['n_images']}  {config_text(board['config'])}  "
            f"({len(board['rows'])} model(s), ranked by {args.by}, higher = more robust)"
        )
        if board.get("data_config"):  # runs fed differently sit on different boards
            print("preprocessing: " + DataConfig.from_dict(board["data_config"]).pipeline())
        table = [
            [
                str(rank),
                r["model_spec"] or "-",
                (r["model_fingerprint"] or "")[:8],
                interval(r["score"], r["score_low"], r["score_high"]),
                interval(r["score_signed"], r["score_signed_low"], r["score_signed_high"], signed=True),
                "-" if r["clean_accuracy"] is None else f"{r['clean_accuracy']:.3f}",
                str(r["id"]),
            ]
            for rank, r in enumerate(board["rows"], 1)
        ]
        print(format_table(["#", "model", "weights", "score [CI]", "score_signed [CI]", "top-1", "run id"], table))
    return 0
