"""Settings whose output would be meaningless, refused before anything runs, each with its
reason: one band, no bootstrap, negative seeds or worker counts, an empty sample, an interval
level or a score decay outside (0, 1)."""

from __future__ import annotations

from typing import Any

from .errors import IasideError


def check_run_arguments(
    *,
    bands: int | None = None,
    n_bootstrap: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    samples: int | None = None,
    confidence: float | None = None,
    beta: float | None = None,
) -> None:
    """Refuse settings whose output would be meaningless, each with its reason."""
    if bands is not None and bands < 2:
        raise IasideError(
            f"--bands {bands}: I-ASIDE splits the spectrum into M >= 2 bands (with one band "
            "there is nothing to attribute: its SID is 1 and the score is undefined)"
        )
    if n_bootstrap is not None and n_bootstrap < 1:
        raise IasideError(
            f"--bootstrap {n_bootstrap}: the intervals need at least 1 bootstrap resample (1000 is the default)"
        )
    if seed is not None and seed < 0:
        raise IasideError(f"--seed {seed}: seeds are integers >= 0")
    if workers is not None and workers < 0:
        raise IasideError(
            f"--workers {workers}: the number of data-loader processes is >= 0 (0 = load in the main process)"
        )
    if samples is not None and samples < 1:
        raise IasideError(f"--samples {samples}: pass a positive number of images, or leave it out")
    if confidence is not None and not 0.0 < confidence < 1.0:
        raise IasideError(
            f"confidence={confidence}: the intervals' level is a fraction between 0 and 1 (0.95 is the default)"
        )
    if beta is not None and not 0.0 < beta < 1.0:
        raise IasideError(
            f"beta={beta}: the score weighs band k by beta**k with 0 < beta < 1 (0.75 is the default; at 1 "
            "every band weighs the same and the score is undefined)"
        )


def check_command_arguments(args: Any) -> None:
    """``check_run_arguments`` over whichever of those options a parsed command line has."""
    check_run_arguments(
        **{
            name: getattr(args, attr)
            for name, attr in (
                ("bands", "bands"),
                ("n_bootstrap", "bootstrap"),
                ("seed", "seed"),
                ("workers", "workers"),
                ("samples", "samples"),
            )
            if getattr(args, attr, None) is not None
        }
    )
