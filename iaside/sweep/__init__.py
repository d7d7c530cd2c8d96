"""Many models, one command: each model's I-ASIDE run (and robustness evaluation) in its own process.

A models file has one model per line: its spec, then the ``iaside run`` options for that model
(``--name NAME`` sets the display name; ``#`` starts a comment). Each model works in
``OUT/models/<name>/`` and its state is kept in ``OUT/sweep.json``: a crash, an out-of-memory
kill or a bad option stops only that model (its exit code and last error line are recorded),
a rerun skips finished models and resumes unfinished ones from their checkpoints. At the end:
the leaderboard (score with intervals, clean accuracy, failures), the HTML report and, with
robustness numbers, the comparison with correlations.

``models_file``: the file read and checked; ``runner``: the child processes and ``sweep.json``;
``finish``: the leaderboard, report and comparison.
"""

from __future__ import annotations

from .finish import LEADERBOARD_CSV, LEADERBOARD_MD, REPORT_HTML, finish_sweep, leaderboard_markdown, leaderboard_rows
from .models_file import ROBUSTNESS_OPTIONS, SweepModel, check_run_options, read_models
from .runner import LOG, SWEEP_JSON, SweepState, run_logged, run_sweep

__all__ = [
    "LEADERBOARD_CSV",
    "LEADERBOARD_MD",
    "LOG",
    "REPORT_HTML",
    "ROBUSTNESS_OPTIONS",
    "SWEEP_JSON",
    "SweepModel",
    "SweepState",
    "check_run_options",
    "finish_sweep",
    "leaderboard_markdown",
    "leaderboard_rows",
    "read_models",
    "run_logged",
    "run_sweep",
]
