"""iaside constraints: the pip pins that add extras without replacing the installed torch."""

from __future__ import annotations

import sys

NAME = "constraints"
HELP = (
    "print pip constraints that keep the installed torch (use: iaside constraints | "
    "pip install --constraint /dev/stdin 'iaside[timm,torchvision,hf]')"
)


def add_arguments(parser) -> None:
    parser.add_argument(
        "--as-tested",
        action="store_true",
        help="print the pins as shipped (the versions iaside is tested with), not following the installed torch",
    )


def run(args) -> int:
    from ..install import constraints, shipped_pins

    sys.stdout.write(shipped_pins() if args.as_tested else constraints())
    return 0
