"""Finer band-limited curves: ideal low-pass and high-pass images at any radial cut-off.

At cut-off c ∈ (0, 1] (normalised radius, Nyquist = 1 on each axis, ℓ∞ or ℓ2 as the band
partition), the low-pass image keeps the DFT bins with r < c and the high-pass image those with
r ≥ c (the zero fill's ideal filters, no clipping). With c = k/M these are exactly the exact
run's band-limited coalitions {0…k−1} and {k…M−1} of the same partition. Passes: 2 × cut-offs
× images, plus one clean pass per image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import IasideError
from .heatmap import HeatmapState, open_variants_folder, stream_variants
from .interactions import mean_with_interval
from .runs import atomic_write
from .spectral import freq_radius

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
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    state: HeatmapState | None = None,
    checkpoint: Callable[[HeatmapState], None] | None = None,
    show_progress: bool = True,
) -> tuple[HeatmapState, dict[str, Any]]:
    """log p(y) and top-1 of every image's 2C filtered copies (low-pass first)."""
    device = torch.device(device)
    _, height, width = dataset[0].pixels.shape
    filters = cutoff_filters(height, width, cutoffs, partition).to(device)

    def filtered(x, item, start, stop):
        spectrum = torch.fft.fft2(x.double())  # (C, H, W)
        return torch.fft.ifft2(spectrum[None] * filters[start:stop, None]).real.float()

    return stream_variants(
        model,
        dataset,
        len(filters),
        filtered,
        batch_size=batch_size,
        device=device,
        state=state,
        checkpoint=checkpoint,
        show_progress=show_progress,
        desc="cut-offs",
    )


def summarize_cutoffs(
    state: HeatmapState, cutoffs: np.ndarray, *, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
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
    labels: str | None = None,
    samples: int | None = None,
    seed: int = 0,
    n_bootstrap: int = 1000,
    batch_size: int = 64,
    device: str = "cpu",
    precision: str = "fp32",
    weights: str | None = None,
    data_config=None,
    overrides: dict | None = None,
    num_classes: int | None = None,
    outputs: str = "logits",
    out: str | os.PathLike | None = None,
    show_progress: bool = True,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Any] | None:
    """Low-/high-pass accuracy and v of ``model`` over ``data`` at each cut-off; says the cost
    first. With ``out``: resumes from and writes cutoffs.json and the checkpoint there."""
    from .config import ExplainConfig
    from .data.resolve import resolve_data
    from .engine import ModelRunner
    from .models.registry import resolve_model
    from .runtime import apply_malloc_fix

    apply_malloc_fix()
    cutoffs = parse_cutoffs(cutoffs) if isinstance(cutoffs, str) else np.asarray(cutoffs, np.float64)
    loaded = resolve_model(model, weights, device, data_config, overrides, num_classes, outputs)
    config = ExplainConfig.build(
        None, labels="predicted" if labels == "predicted" else "given", samples=samples, seed=seed
    )
    labels_file = labels if labels not in (None, "given", "predicted") else None
    dataset = resolve_data(data, loaded.data_config, config, labels_file, loaded.model.class_names)
    n = len(dataset)
    say(
        f"cut-offs: {n} images × {len(cutoffs)} cut-offs × 2 (low-pass, high-pass) = {2 * n * len(cutoffs)} forward "
        f"passes, plus {n} clean passes ({partition} radius, ideal filters)"
    )
    if dry_run:
        return None
    identity = {
        "model": {"spec": loaded.spec, "fingerprint": loaded.fingerprint},
        "data": {"fingerprint": dataset.fingerprint() if hasattr(dataset, "fingerprint") else None, "n_images": n},
        "data_config": loaded.data_config.to_dict(),
        "cutoffs": cutoffs.tolist(),
        "partition": partition,
        "precision": precision,
        "labels": config.labels,
    }
    out = Path(out) if out is not None else None
    state, checkpoint = open_variants_folder(out, identity, "cutoffs-run.json", CUTOFFS_STATE, "cut-off curves")
    dev = torch.device(device)
    forward = ModelRunner(loaded.model, device=dev, precision=precision).logits  # the engine's model runner
    state, stats = cutoff_curves(
        forward,
        dataset,
        cutoffs,
        partition=partition,
        batch_size=batch_size,
        device=dev,
        state=state,
        checkpoint=checkpoint,
        show_progress=show_progress,
    )
    summary = {
        **summarize_cutoffs(state, cutoffs, n_bootstrap=n_bootstrap, seed=seed),
        "partition": partition,
        "model": identity["model"],
        "data_spec": getattr(dataset, "description", str(data)),
        "forward_passes_this_session": stats["passes"],
        "seconds_this_session": stats["seconds"],
    }
    if out is not None:
        state.save(out / CUTOFFS_STATE)
        atomic_write(out / CUTOFFS_JSON, json.dumps(summary, allow_nan=True))
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
