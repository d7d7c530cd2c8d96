"""Subcommands, one module each: ``NAME``, ``HELP``, ``add_arguments(parser)``, ``run(args) -> int``.

The CLI finds every module listed in ``COMMANDS``; a new command is a new module plus one entry.
"""

COMMANDS = [
    "run",
    "show",
    "models",
    "merge",
    "report",
    "runs",
    "leaderboard",
    "explain_image",
    "snr",
    "robustness",
    "compare",
    "constraints",
    "sweep",
    "heatmap",
    "cutoffs",
]
