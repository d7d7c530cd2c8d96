"""Finer band-limited curves: ideal low-pass and high-pass images at any radial cut-off.

At cut-off c ∈ (0, 1] (normalised radius, Nyquist = 1 on each axis, ℓ∞ or ℓ2 as the band
partition), the low-pass image keeps the DFT bins with r < c and the high-pass image those with
r ≥ c (the zero fill's ideal filters, no clipping). With c = k/M these are exactly the exact
run's band-limited coalitions {0…k−1} and {k…M−1} of the same partition. Passes: 2 × cut-offs
× images, plus one clean pass per image.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .errors import IasideError
from .interactions import mean_with_interval
from .runs import atomic_write
from .spectral import freq_radius
from .variants import VariantsRun, VariantState, stream_variants

CUTOFFS_JSON = "cutoffs.json"
CUTOFFS_STATE = "cutoffs-state.npz"


def parse_cutoffs(text: str) -> np.ndarray:
    """'0.1,0.2,0.5' -> (C,) float64, each in (0, 1], sorted, distinct."""
    try:
        values = np.array(sorted({float(v) for v in text.split(",") if v.strip()}), np.float64)
    except ValueError:
        raise IasideError(f"--cutoffs needs comma-separated numbers in (0, 1], got {text!r}") from None
    if not values.size or values.min() <= 0 or values.max() > 1:
        raise IasideError(f"--cutoffs needs numbers in (0, 1] (normalised radius, Nyquist = 1), got {text!r}")
    return values


def cutoff_filters(height: int, width: int, cutoffs: np.ndarray, partition: str = "linf") -> torch.Tensor:
    """(2C, H, W) float32 0/1 masks on the unshifted DFT grid: the C low-pass (r < c) then the C
    high-pass (r ≥ c) filters."""
    radius = freq_radius(height, width, partition)
    low = np.stack([radius < c for c in cutoffs])
    return torch.from_numpy(np.concatenate([low, ~low])).float()


def cutoff_curves(
    model: Callable[[torch.Tensor], torch.Tensor],
    dataset,
    cutoffs: np.ndarray,
    *,
    partition: str = "linf",
    **stream,
) -> tuple[VariantState, dict[str, Any]]:
    """log p(y) and top-1 of every image's 2C filtered copies (low-pass first); ``stream``:
    ``stream_variants``' keywords (batch_size, device, state, checkpoint, show_progress)."""
    device = torch.device(stream.pop("device", "cpu"))
    _, height, width = dataset[0].pixels.shape
    filters = cutoff_filters(height, width, cutoffs, partition).to(device)

    def filtered(x, item, start, stop):
        spectrum = torch.fft.fft2(x.double())  # (C, H, W)
        return torch.fft.ifft2(spectrum[None] * filters[start:stop, None]).real.float()

    return stream_variants(model, dataset, len(filters), filtered, device=device, desc="cut-offs", **stream)


def summarize_cutoffs(
    state: VariantState, cutoffs: np.ndarray, *, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Per cut-off: accuracy and v (mean log p(y), nats) of the low- and high-pass images, with
    bootstrap intervals over images (JSON-ready)."""
    done = state.done == 1
    c = len(cutoffs)
    out: dict[str, Any] = {
        "cutoffs": cutoffs.tolist(),
        "n_images": int(done.sum()),
        "clean_accuracy": float(state.clean_hit[done].mean()),
    }
    for name, cols in (("lowpass", slice(0, c)), ("highpass", slice(c, 2 * c))):
        out[name] = {
            "accuracy": mean_with_interval(
                state.hit[done][:, cols].astype(np.float64), n_bootstrap, confidence, seed
            ).to_dict(),
            "v_nats": mean_with_interval(state.logp[done][:, cols], n_bootstrap, confidence, seed).to_dict(),
        }
    return out


def run_cutoffs(
    model,
    data,
    cutoffs,
    *,
    partition: str = "linf",
    seed: int = 0,
    n_bootstrap: int = 1000,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
    **options,
) -> dict[str, Any] | None:
    """Low-/high-pass accuracy and v of ``model`` over ``data`` at each cut-off; says the cost
    first. ``options``: ``iaside.explain``'s options that apply (``variants.PASS_OPTIONS``: labels,
    samples, the source options, batch_size, device, precision, out, show_progress). With ``out``: resumes from and writes cutoffs.json
    and the checkpoint there."""
    cutoffs = parse_cutoffs(cutoffs) if isinstance(cutoffs, str) else np.asarray(cutoffs, np.float64)
    run = VariantsRun.resolve(model, data, seed=seed, **options)
    n = len(run.dataset)
    say(
        f"cut-offs: {n} images × {len(cutoffs)} cut-offs × 2 (low-pass, high-pass) = {2 * n * len(cutoffs)} forward "
        f"passes, plus {n} clean passes ({partition} radius, ideal filters)"
    )
    if dry_run:
        return None
    identity = run.identity(cutoffs=cutoffs.tolist(), partition=partition)
    stream = run.stream(identity, "cutoffs-run.json", CUTOFFS_STATE, "cut-off curves")
    state, stats = cutoff_curves(run.forward(), run.dataset, cutoffs, partition=partition, **stream)
    summary = {
        **summarize_cutoffs(state, cutoffs, n_bootstrap=n_bootstrap, seed=seed),
        "partition": partition,
        **run.session(identity, stats),
    }
    if run.folder is not None:
        state.save(run.folder / CUTOFFS_STATE)
        atomic_write(run.folder / CUTOFFS_JSON, json.dumps(summary, allow_nan=True))
    return summary


def cutoffs_table(summary: dict[str, Any]) -> str:
    lines = [
        f"{'cut-off':>8}  {'low-pass top-1 [CI]':<24}  {'v (nats)':>8}  {'high-pass top-1 [CI]':<24}  {'v (nats)':>8}"
    ]
    for k, c in enumerate(summary["cutoffs"]):
        cells = []
        for name in ("lowpass", "highpass"):
            a, v = summary[name]["accuracy"], summary[name]["v_nats"]
            cells.append(
                f"{a['value'][k]:.3f} [{a['low'][k]:.3f},{a['high'][k]:.3f}]".ljust(24) + f"  {v['value'][k]:+8.3f}"
            )
        lines.append(f"{c:>8.3f}  {cells[0]}  {cells[1]}")
    return "\n".join(lines)
