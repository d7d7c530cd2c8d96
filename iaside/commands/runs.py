"""iaside runs: list the runs recorded in the results store."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "runs"
HELP = "list recorded runs (newest first), filtered by model, data or preset"


def add_store_argument(parser) -> None:
    """--store PATH (shared by the commands that read the results store)."""
    parser.add_argument(
        "--store", type=Path, help="the results database (default $IASIDE_STORE, else ~/.iaside/runs.sqlite)"
    )


def add_arguments(parser) -> None:
    add_store_argument(parser)
    parser.add_argument("--model", help="only models whose spec contains this text (or this fingerprint)")
    parser.add_argument("--data", help="only data sets whose description contains this text")
    parser.add_argument("--preset", help="only this preset ('none' = runs without a preset)")
    parser.add_argument("--limit", type=int, help="show at most N runs")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines")
    parser.add_argument(
        "--add",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="record this finished run folder first (repeatable; for runs made before the store "
        "existed or with recording off)",
    )


def interval(value, low, high, signed: bool = False) -> str:
    """'0.1234 [0.1000, 0.1500]' (signs shown for signed quantities); '-' when missing."""
    if value is None:
        return "-"
    f = "{:+.4f}" if signed else "{:.4f}"
    text = f.format(value)
    return text + (f" [{f.format(low)}, {f.format(high)}]" if low is not None and high is not None else "")


def config_text(row: dict) -> str:
    """'M=8 linf partner' plus preset, clip and label mode when they are not the defaults."""
    parts = [f"M={row['bands']}", str(row["partition"]), str(row["fill"])]
    if row.get("preset"):
        parts.append(f"preset={row['preset']}")
    if row.get("clip"):
        parts.append("clip")
    if row.get("labels") == "predicted":
        parts.append("labels=predicted")
    return " ".join(parts)


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [headers, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def run(args) -> int:
    from ..report.loading import short_data
    from ..result import Result
    from ..store import list_runs, record_run, store_path

    for folder in args.add:
        run_id = record_run(Result.load(folder), folder, args.store, strict=True)
        print(f"recorded {folder} as run {run_id}" if run_id is not None else "not recorded: the store is off")
    rows = list_runs(args.store, model=args.model, data=args.data, preset=args.preset, limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str))
        return 0
    if not rows:
        print(f"no recorded runs match in {store_path(args.store)}")
        return 0
    table = [
        [
            str(r["id"]),
            (r["created"] or "")[:16].replace("T", " "),
            r["model_spec"] or "-",
            short_data(r["data_spec"]),
            str(r["n_images"]),
            config_text(r),
            interval(r["score"], r["score_low"], r["score_high"]),
            interval(r["score_signed"], None, None, signed=True),
            r["run_dir"] + ("" if r["exists"] else "  (folder gone)"),
        ]
        for r in rows
    ]
    print(
        format_table(
            ["id", "created (UTC)", "model", "data", "N", "configuration", "score [CI]", "score_signed", "folder"],
            table,
        )
    )
    print(f"{len(rows)} run(s) in {store_path(args.store)}")
    return 0
