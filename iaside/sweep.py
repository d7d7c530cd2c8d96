"""Many models, one command: each model's I-ASIDE run (and robustness evaluation) in its own process.

A models file has one model per line: its spec, then the ``iaside run`` options for that model
(``--name NAME`` sets the display name; ``#`` starts a comment). Each model works in
``OUT/models/<name>/`` and its state is kept in ``OUT/sweep.json``: a crash, an out-of-memory
kill or a bad option stops only that model (its exit code and last error line are recorded),
a rerun skips finished models and resumes unfinished ones from their checkpoints. At the end:
the leaderboard (score with intervals, clean accuracy, failures), the HTML report and, with
robustness numbers, the comparison with correlations.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import IasideError
from .runs import atomic_write

SWEEP_JSON = "sweep.json"
LEADERBOARD_MD = "leaderboard.md"
LEADERBOARD_CSV = "leaderboard.csv"
REPORT_HTML = "report.html"
LOG = "log.txt"
ROBUSTNESS_OPTIONS = (
    "--weights",
    "--device",
    "--input-size",
    "--resize-size",
    "--interpolation",
    "--mean",
    "--std",
    "--channels",
    "--labels",
    "--samples",
    "--seed",
)
"""Options of a model's line that also apply to its robustness evaluation (the rest are I-ASIDE's)."""


@dataclass
class SweepModel:
    """One line of the models file: name, spec, the ``iaside run`` options, and the line itself."""

    name: str
    spec: str
    options: list[str]
    line: str
    line_number: int = 0

    def robustness_options(self) -> list[str]:
        """The line's options that ``iaside robustness`` takes too (data config, labels, samples, ...)."""
        out, k = [], 0
        while k < len(self.options):
            if self.options[k].split("=", 1)[0] in ROBUSTNESS_OPTIONS:
                take = 1 if "=" in self.options[k] else 2
                out += self.options[k : k + take]
                k += take
            else:
                k += 1
        return out


def _slug(text: str) -> str:
    import re

    text = Path(text).name if "/" in text else text
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "model"


def read_models(path: str | os.PathLike, check: Callable[[list[str]], None] | None = None) -> list[SweepModel]:
    """Parse a models file; ``check(argv)`` validates each line's ``iaside run`` options (raising
    IasideError). Names must be unique (the spec's file name, or ``--name``)."""
    path = Path(path)
    if not path.is_file():
        raise IasideError(f"the models file {path} does not exist: give one model spec per line, then its options")
    models: list[SweepModel] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        try:
            tokens = shlex.split(line)
        except ValueError as err:
            raise IasideError(f"{path}:{number}: cannot split the line ({err})") from err
        spec, options, name = tokens[0], [], None
        k = 1
        while k < len(tokens):
            if tokens[k] == "--name" and k + 1 < len(tokens):
                name, k = tokens[k + 1], k + 2
            elif tokens[k].startswith("--name="):
                name, k = tokens[k].split("=", 1)[1], k + 1
            else:
                options.append(tokens[k])
                k += 1
        if spec.startswith("-"):
            raise IasideError(f"{path}:{number}: a line starts with the model spec, got {spec!r}")
        if check is not None:
            try:
                check(options)
            except IasideError as err:
                raise IasideError(f"{path}:{number} ({spec}): {err}") from err
        models.append(SweepModel(_slug(name or spec), spec, options, line, number))
    if not models:
        raise IasideError(f"{path} lists no model (one spec per line, '#' for comments)")
    names = [m.name for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise IasideError(f"{path}: models named {', '.join(dupes)} more than once; add --name NAME to those lines")
    return models


@dataclass
class SweepState:
    """``sweep.json``: per model {spec, line, status (pending|running|done|failed), stage, returncode,
    error, seconds, attempts}."""

    path: Path
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, out: Path) -> SweepState:
        path = out / SWEEP_JSON
        if not path.exists():
            return cls(path)
        try:
            return cls(path, json.loads(path.read_text()).get("models", {}))
        except ValueError as err:
            raise IasideError(
                f"{path} is damaged ({err}); delete it to start the sweep's bookkeeping over "
                "(finished runs in models/ are kept and resumed)"
            ) from err

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"models": self.models}, indent=1))


def _tail_error(text: str) -> str:
    """The line that says what went wrong: the last 'iaside: error' line, else the last non-empty line."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [""])[-1][:500]


def run_logged(argv: Sequence[str], log: Path, echo: bool, timeout_s: float | None = None) -> tuple[int, str]:
    """Run ``argv``; its output goes to ``log`` (appended) and, with ``echo``, to our stderr as it
    comes (progress bars included). Returns (exit code, or −signal; the last 8 kB of output).
    After ``timeout_s`` seconds the process is killed (its code is then −9)."""
    import threading

    log.parent.mkdir(parents=True, exist_ok=True)
    tail = bytearray()
    with open(log, "ab") as fh:
        fh.write(f"\n$ {shlex.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def pump() -> None:
            assert proc.stdout is not None
            while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
                fh.write(chunk)
                tail.extend(chunk)
                del tail[:-8192]
                if echo:
                    sys.stderr.buffer.write(chunk)
                    sys.stderr.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
            tail.extend(f"\niaside sweep: error: stopped after the --timeout of {timeout_s:g} s\n".encode())
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        reader.join()
    return code, bytes(tail).decode(errors="replace")


def _done_files(folder: Path, robustness: bool) -> bool:
    return (folder / "result.json").exists() and (not robustness or (folder / "robustness.json").exists())


def run_sweep(
    models: Sequence[SweepModel],
    data: str,
    out: str | os.PathLike,
    *,
    run_options: Sequence[str] = (),
    robustness_options: Sequence[str] | None = None,
    retry_failed: bool = False,
    timeout_s: float | None = None,
    echo: bool = True,
    say: Callable[[str], None] = print,
    python: str = sys.executable,
) -> SweepState:
    """Run every model not yet done; returns the sweep's state (also in ``out/sweep.json``).

    run_options: ``iaside run`` options for every model (a line's own options come after them,
    so they win); robustness_options: None for no robustness evaluation, else the ``iaside
    robustness`` options for every model.
    """
    out = Path(out)
    state = SweepState.load(out)
    robust = robustness_options is not None
    n = len(models)
    for k, model in enumerate(models, 1):
        folder = out / "models" / model.name
        entry = state.models.get(model.name, {})
        same = entry.get("line") == model.line
        head = f"[{k}/{n}] {model.name}"
        if same and entry.get("status") == "done" and _done_files(folder, robust):
            say(f"{head}: done earlier, skipped")
            continue
        if same and entry.get("status") == "failed" and not retry_failed:
            say(f"{head}: failed earlier ({entry.get('error')}), skipped; --retry-failed runs it again")
            continue
        entry = {
            "spec": model.spec,
            "line": model.line,
            "folder": str(folder.relative_to(out)),
            "attempts": (entry.get("attempts", 0) if same else 0) + 1,
            "status": "running",
        }
        resumed = (folder / "state.npz").exists()
        stages = []
        if not (folder / "result.json").exists() or not same:
            stages.append(
                (
                    "iaside",
                    [
                        python,
                        "-m",
                        "iaside",
                        "run",
                        "--model",
                        model.spec,
                        "--data",
                        data,
                        *run_options,
                        *model.options,
                        "--out",
                        str(folder),
                    ],
                )
            )
        if robustness_options is not None and not (folder / "robustness.json").exists():
            stages.append(
                (
                    "robustness",
                    [
                        python,
                        "-m",
                        "iaside",
                        "robustness",
                        "--model",
                        model.spec,
                        "--data",
                        data,
                        *robustness_options,
                        *model.robustness_options(),
                        "--out",
                        str(folder),
                    ],
                )
            )
        t0 = time.perf_counter()
        for stage, argv in stages:
            entry["stage"] = stage
            state.models[model.name] = entry
            state.save()
            say(
                f"{head}: {'resuming' if stage == 'iaside' and resumed else 'running'} "
                f"{'I-ASIDE' if stage == 'iaside' else 'the robustness evaluation'} ({model.spec})"
            )
            code, tail = run_logged(argv, folder / LOG, echo, timeout_s)
            if code != 0:
                how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                entry.update(status="failed", returncode=code, error=f"{stage}: {how}: {_tail_error(tail)}")
                break
        else:
            entry.update(status="done", returncode=0, error=None)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        entry.pop("stage", None)
        state.models[model.name] = entry
        state.save()
        say(f"{head}: {entry['status']}" + (f" — {entry['error']} (log: {folder / LOG})" if entry["error"] else ""))
    return state


def leaderboard_rows(models: Sequence[SweepModel], out: Path, state: SweepState) -> list[dict[str, Any]]:
    """One row per model, finished ones ranked by score (higher = more robust), then the others."""
    from .result import Result

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
                "score": float(r.score.value),
                "score_low": float(r.score.low),
                "score_high": float(r.score.high),
                "score_signed": float(r.score_signed.value),
                "score_signed_low": float(r.score_signed.low),
                "score_signed_high": float(r.score_signed.high),
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
        from .report.html import write_report

        written["report"] = write_report(done, out / REPORT_HTML, title=f"iaside sweep: {out.name}")
    measured = done if external else [d for d in done if (d / "robustness.json").exists()]
    if len(measured) >= 2:
        from .result import Result
        from .robustness.compare import ModelEntry, compare_models
        from .robustness.external import read_external
        from .robustness.report import RobustnessReport

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


def check_run_options(options: list[str]) -> None:
    """Refuse options that ``iaside run`` would not accept (or that the sweep sets itself)."""
    from .commands import run as run_command

    for own in ("--model", "--data", "--out"):
        if any(o == own or o.startswith(own + "=") for o in options):
            raise IasideError(f"{own} is set by the sweep; leave it out of the line")
    parser = argparse.ArgumentParser(prog="iaside run", add_help=False, exit_on_error=False)
    run_command.add_arguments(parser)
    try:
        _, unknown = parser.parse_known_args(["--model", "m", "--data", "d", *options])
    except (argparse.ArgumentError, SystemExit) as err:
        raise IasideError(f"bad option: {err}") from None
    if unknown:
        raise IasideError(f"not an option of `iaside run`: {' '.join(unknown)}")
