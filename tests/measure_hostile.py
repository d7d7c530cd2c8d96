"""Figures for docs/reliability.md section 8: hostile data folders and explain-image memory.

    python tests/measure_hostile.py                      # this checkout
    python tests/measure_hostile.py --pythonpath OTHER   # the same cases against another checkout

Each case runs ``iaside`` in a child process (tests/reliability_child.py, one intra-op thread,
store off) under a timeout and prints: outcome (exit code, or "hang" when the timeout
struck), images analysed / skipped, and the child's peak resident memory (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_ARGS, tiny_cnn, write_image_folder
from test_hostile import bilevel_png

CHILD = Path(__file__).with_name("reliability_child.py")


def child(args: list, work: Path, pythonpath: str, timeout: float) -> tuple[str, float, str]:
    peak_file = work / "peak.txt"
    peak_file.unlink(missing_ok=True)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "IASIDE_STORE": "off",
        "PYTHONPATH": pythonpath,
        "IASIDE_TEST_PEAK_RSS_FILE": str(peak_file),
    }
    try:
        proc = subprocess.run(
            [sys.executable, str(CHILD), "cli", *map(str, args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"hang (killed after {timeout:.0f} s)", float("nan"), ""
    peak = int(peak_file.read_text()) / 1024 if peak_file.exists() else float("nan")
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    return f"exit {proc.returncode}", peak, last[:110]


def counts(out: Path) -> str:
    if not (out / "result.json").exists():
        return "-"
    data = json.loads((out / "result.json").read_text())["data"]
    return f"{data['n_images']} analysed, {len(data.get('skipped', []))} skipped"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythonpath", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--explain-bands", default="12,14,16")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="measure-hostile-"))
    model = work / "tiny.pt"
    torch.jit.script(tiny_cnn(n_classes=3)).save(str(model))
    base = ["run", "--model", f"torchscript:{model}", *TINY_ARGS]

    def folder(name: str) -> Path:
        return write_image_folder(work / name, 9)

    rows = []
    loop = folder("loop")
    os.symlink("..", loop / "1" / "loop")
    out = work / "out-loop"
    outcome, peak, line = child(base + ["--data", loop, "--out", out], work, args.pythonpath, args.timeout)
    rows.append(("9 images + `ln -s .. 1/loop`", outcome, counts(out), peak, line))

    for mode in ("error", "skip"):
        fifo = folder(f"fifo-{mode}")
        os.mkfifo(fifo / "1" / "img.png")
        out = work / f"out-fifo-{mode}"
        outcome, peak, line = child(
            base + ["--data", fifo, "--on-bad-image", mode, "--out", out], work, args.pythonpath, args.timeout
        )
        rows.append((f"9 images + FIFO `1/img.png`, --on-bad-image {mode}", outcome, counts(out), peak, line))

    for w, h in ((6, 1_000_000), (6, 29_000_000)):
        thin = folder(f"thin-{h}")
        (thin / "0" / f"thin-{w}x{h}.png").write_bytes(bilevel_png(w, h))
        out = work / f"out-thin-{h}"
        outcome, peak, line = child(
            base + ["--data", thin, "--on-bad-image", "skip", "--out", out], work, args.pythonpath, args.timeout
        )
        rows.append((f"9 images + {w}×{h} 1-bit PNG, skip", outcome, counts(out), peak, line))
    plain = folder("plain")
    out = work / "out-plain"
    outcome, peak, line = child(base + ["--data", plain, "--out", out], work, args.pythonpath, args.timeout)
    rows.append(("9 images (floor)", outcome, counts(out), peak, line))

    image = plain / "0" / "0.png"
    for m in map(int, args.explain_bands.split(",")):
        outcome, peak, line = child(
            [
                "explain-image",
                image,
                "--model",
                f"torchscript:{model}",
                "--input-size",
                "32",
                "--resize-size",
                "32",
                "--bands",
                m,
                "--batch-size",
                "256",
                "-o",
                work / f"x{m}.png",
            ],
            work,
            args.pythonpath,
            args.timeout * 3,
        )
        rows.append((f"explain-image --bands {m} (2**{m} passes)", outcome, "-", peak, line))

    print("| case | outcome | images | peak RSS (MiB) | last stderr line |\n|---|---|---|---|---|")
    for case, outcome, images, peak, line in rows:
        print(f"| {case} | {outcome} | {images} | {peak:.0f} | {line.replace('|', '/')} |")


if __name__ == "__main__":
    main()
