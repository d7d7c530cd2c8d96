"""What a sweep leaves when its models are through: the leaderboard (markdown and CSV, finished
models ranked by score with intervals, then the others with their status), the HTML report of the
finished runs and, with robustness numbers for two or more, the comparison with correlations."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import IasideError
from .models_file import SweepModel
from .runner import SweepState

LEADERBOARD_MD = "leaderboard.md"
LEADERBOARD_CSV = "leaderboard.csv"
REPORT_HTML = "report.html"


def leaderboard_rows(models: Sequence[SweepModel], out: Path, state: SweepState) -> list[dict[str, Any]]:
    """One row per model, finished ones ranked by score (higher = more robust), then the others."""
    from ..result import Result

    done: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []
    for m in models:
        entry = state.models.get(m.name, {})
        folder = out / "models" / m.name
        if entry.get("status") == "done" and (folder / "result.json").exists():
            r = Result.load(folder)
            row = {
                "model": m.name,
                "spec": m.spec,
                "status": "done",
                **r.score_columns(),
                "clean_accuracy": r.clean_accuracy,
                "n_images": r.data.get("n_images"),
                "error": "",
            }
            robustness = folder / "robustness.json"
            if robustness.exists():
                rep = json.loads(robustness.read_text())
                row["mean_corruption_error"] = rep.get("mean_error")
            done.append(row)
        else:
            other.append(
                {
                    "model": m.name,
                    "spec": m.spec,
                    "status": entry.get("status", "pending"),
                    "error": entry.get("error") or "",
                }
            )
    done.sort(key=lambda r: -r["score"])
    for rank, row in enumerate(done, 1):
        row["rank"] = rank
    return done + other


def leaderboard_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| # | model | score [95% CI] | score_signed [95% CI] | clean top-1 | status |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["status"] == "done":
            acc = "-" if r["clean_accuracy"] is None else f"{r['clean_accuracy']:.3f}"
            lines.append(
                f"| {r['rank']} | {r['model']} | {r['score']:.4f} [{r['score_low']:.4f}, {r['score_high']:.4f}]"
                f" | {r['score_signed']:+.4f} [{r['score_signed_low']:+.4f}, {r['score_signed_high']:+.4f}]"
                f" | {acc} | done |"
            )
        else:
            lines.append(f"| - | {r['model']} | - | - | - | {r['status']}: {r['error']} |")
    return "\n".join(lines)


def finish_sweep(
    models: Sequence[SweepModel],
    out: str | os.PathLike,
    state: SweepState,
    *,
    say: Callable[[str], None] = print,
    n_bootstrap: int = 1000,
    seed: int = 0,
    external: Sequence[str | os.PathLike] = (),
) -> dict[str, Path]:
    """Leaderboard (markdown + CSV), the HTML report of the finished runs and, when at least two
    have robustness numbers (measured, or in the ``external`` tables joined by model name), the
    comparison with correlations. Returns the files written."""
    import csv

    out = Path(out)
    rows = leaderboard_rows(models, out, state)
    written = {"leaderboard": out / LEADERBOARD_MD}
    (out / LEADERBOARD_MD).write_text(leaderboard_markdown(rows) + "\n")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / LEADERBOARD_CSV, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    say(leaderboard_markdown(rows))
    done = [out / "models" / r["model"] for r in rows if r["status"] == "done"]
    if done:
        from ..report.html import write_report

        written["report"] = write_report(done, out / REPORT_HTML, title=f"iaside sweep: {out.name}")
    measured = done if external else [d for d in done if (d / "robustness.json").exists()]
    if len(measured) >= 2:
        from ..result import Result
        from ..robustness.compare import ModelEntry, compare_models
        from ..robustness.external import read_external
        from ..robustness.report import RobustnessReport

        try:
            entries = [
                ModelEntry(
                    d.name,
                    Result.load(d),
                    RobustnessReport.load(d / "robustness.json") if (d / "robustness.json").exists() else None,
                )
                for d in measured
            ]
            comparison = compare_models(
                entries,
                external=read_external(list(external)) if external else None,
                n_bootstrap=n_bootstrap,
                seed=seed,
            )
        except IasideError as err:  # the leaderboard and report stand; say why there is no comparison
            say(f"no comparison: {err}")
        else:
            comparison.save(out / "compare")
            written["compare"] = out / "compare"
            say(comparison.correlation_table())
            say(comparison.partial_table())
    failed = [r for r in rows if r["status"] != "done"]
    say(
        f"{len(done)} of {len(rows)} models finished"
        + (f", {len(failed)} not: " + "; ".join(f"{r['model']} ({r['status']})" for r in failed) if failed else "")
        + "; wrote "
        + ", ".join(str(p) for p in written.values())
    )
    return written
