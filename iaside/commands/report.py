"""iaside report: one self-contained HTML file for one or more finished runs."""

from __future__ import annotations

from pathlib import Path

NAME = "report"
HELP = "write one self-contained HTML report (plots embedded) for one or more run folders"


def add_arguments(parser) -> None:
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="DIR", help="--out folders of finished runs")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("report.html"), help="the HTML file to write (default report.html)"
    )
    parser.add_argument(
        "--robustness",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a robustness JSON kept outside the run folders (repeatable); matched to runs by "
        "model fingerprint or spec. A run folder's own robustness.json is always read.",
    )
    parser.add_argument(
        "--images",
        type=int,
        default=4,
        metavar="K",
        help="show the K images that deviate most from the global SID (default 4)",
    )
    parser.add_argument(
        "--no-images",
        action="store_true",
        help="do not reopen the data for band images (per-image SIDs are still shown)",
    )
    parser.add_argument("--title", help="the report's title")
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PNG",
        help="also render the report with headless Chromium into this PNG (the whole page)",
    )
    parser.add_argument(
        "--screenshot-width",
        type=int,
        default=1400,
        metavar="PX",
        help="browser window width for --screenshot in CSS pixels (default 1400)",
    )
    parser.add_argument(
        "--screenshot-height", type=int, metavar="PX", help="window height for --screenshot (default: the whole page)"
    )


def run(args) -> int:
    from ..errors import IasideError
    from ..report.html import write_report

    if args.output.is_dir():
        raise IasideError(
            f"-o {args.output} is a folder; give the HTML file to write, e.g. {args.output / 'report.html'}"
        )

    out = write_report(
        args.run_dirs,
        args.output,
        robustness_files=args.robustness,
        max_images=args.images,
        with_images=not args.no_images,
        title=args.title,
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(args.run_dirs)} run(s))")
    if args.screenshot:
        from ..report.browser import screenshot

        shot = screenshot(out, args.screenshot, width=args.screenshot_width, height=args.screenshot_height)
        print(f"wrote {shot}")
    return 0
