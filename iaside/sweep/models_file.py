"""The models file of a sweep: one model per line, its spec then the ``iaside run`` options for
that model (``--name NAME`` sets the display name; ``#`` starts a comment), read into
``SweepModel``s, each line's options checked against ``iaside run`` before anything runs."""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import IasideError

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


def check_run_options(options: list[str]) -> None:
    """Refuse options that ``iaside run`` would not accept (or that the sweep sets itself)."""
    from ..commands import run as run_command

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
