"""iaside sweep: many models, each in its own process; a crash stops only that model; reruns resume."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import add_external_argument
from .robustness import add_perturbation_arguments

NAME = "sweep"
HELP = (
    "analyse every model of a models file (one spec per line, then its `iaside run` options), each in its own "
    "process; then leaderboard, report and comparison"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "models_file",
        type=Path,
        metavar="MODELS.txt",
        help="one model per line: SPEC [--name NAME] [iaside run options]; '#' starts a comment",
    )
    parser.add_argument("--data", required=True, help="samples:imagenet, samples:photos, or a folder")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the sweep's folder (models/<name>/, sweep.json, "
        "leaderboard.md/.csv, report.html, compare/); rerun the same command to resume",
    )
    parser.add_argument(
        "--run-options",
        default="",
        metavar="'OPTIONS'",
        help="`iaside run` options for every model, in one quoted string (a line's own options win), "
        "e.g. '--bands 6 --samples 200'",
    )
    parser.add_argument(
        "--robustness",
        action="store_true",
        help="also measure each model's corruption and adversarial robustness (its own process), "
        "then compare the scores with it",
    )
    add_perturbation_arguments(parser)
    add_external_argument(parser, "for the comparison at the end")
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="run models that failed before again (default: keep their recorded failure and go on)",
    )
    parser.add_argument("--timeout", type=float, metavar="S", help="stop a model's process after S seconds")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the comparison")
    parser.add_argument("--quiet", action="store_true", help="only the line per model, not each run's output")


def run(args) -> int:
    import shlex

    from ..sweep import check_run_options, finish_sweep, read_models, run_sweep

    run_options = shlex.split(args.run_options)
    check_run_options(run_options)
    models = read_models(args.models_file, check=lambda opts: check_run_options([*run_options, *opts]))
    robustness = None
    if args.robustness:
        robustness = [
            "--corruptions",
            args.corruptions,
            "--severities",
            ",".join(map(str, args.severities)),
            "--linf-eps",
            args.linf_eps,
            "--l2-eps",
            args.l2_eps,
            "--steps",
            str(args.steps),
        ]
    if args.quiet:
        run_options = [*run_options, "--quiet"]
        if robustness is not None:
            robustness.append("--quiet")
    state = run_sweep(
        models,
        args.data,
        args.out,
        run_options=run_options,
        robustness_options=robustness,
        retry_failed=args.retry_failed,
        timeout_s=args.timeout,
        echo=not args.quiet,
    )
    finish_sweep(models, args.out, state, n_bootstrap=args.bootstrap, external=args.external)
    failed = [m.name for m in models if state.models.get(m.name, {}).get("status") != "done"]
    return 1 if failed else 0
