"""Fourier heat map (Yin et al. 2019): error rate and mean Δlog p(y) under one Fourier-basis
perturbation at each frequency.

For each frequency (u, v) of the H×W DFT grid, up to Hermitian symmetry (v ≥ 0, and u ≥ 0 when
v = 0 or v = W/2), the perturbed image is clip(x + ε·r_c·U_{u,v}, 0, 1), where U_{u,v} is the
real Fourier basis image of unit ℓ2 norm (the inverse DFT of the pair (u, v), (−u, −v)) and
r_c = ±1 is drawn per image and channel from (seed, image index). A grid stride s keeps every
s-th frequency in each direction: passes = cells × images, plus one clean pass per image.
An image's perturbed copies go through the model in batches of ``batch_size`` under the run's
precision; finished images are checkpointed, so a stopped run resumes.
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
from .fills import image_generator
from .runs import atomic_write
from .variants import VariantsRun, VariantState, stream_variants

HeatmapState = VariantState  # the name the heat map's callers know

HEATMAP_JSON = "heatmap.json"
HEATMAP_STATE = "heatmap-state.npz"
HEATMAP_PNG = "heatmap.png"
SIGN_SALT = 0xF0E1


def frequency_cells(height: int, width: int, stride: int = 1) -> np.ndarray:
    """The frequencies measured, (K, 2) int64 rows (u, v): u in [−H/2, H/2) (rows), v in [0, W/2]
    (columns), every ``stride``-th from 0, one of each Hermitian pair."""
    if stride < 1:
        raise IasideError(f"--stride must be a positive integer, got {stride}")
    us = [u for u in range(-(height // 2), height - height // 2) if u % stride == 0]
    cells = []
    for v in range(0, width // 2 + 1, stride):
        self_paired = v == 0 or 2 * v == width  # then (u, v) and (−u, v) are the same basis image
        for u in us:
            if self_paired and u < 0 and -2 * u != height:  # −u is in the grid too (u = −H/2 is its own partner)
                continue
            cells.append((u, v))
    return np.array(cells, dtype=np.int64).reshape(-1, 2)


def fourier_basis(height: int, width: int, cells: np.ndarray) -> torch.Tensor:
    """Real Fourier basis images of unit ℓ2 norm, (K, H, W) float32: cos(2π(u·y/H + v·x/W)) for
    the pair (u, v), (−u, −v); a pair that is its own conjugate with a zero cosine at every pixel
    does not occur (u, v of a self-conjugate pair are 0 or the Nyquist frequency, cos = ±1)."""
    y = torch.arange(height, dtype=torch.float64)[:, None]
    x = torch.arange(width, dtype=torch.float64)[None, :]
    u = torch.as_tensor(cells[:, 0], dtype=torch.float64)[:, None, None]
    v = torch.as_tensor(cells[:, 1], dtype=torch.float64)[:, None, None]
    basis = torch.cos(2 * torch.pi * (u * y / height + v * x / width))
    return (basis / basis.flatten(1).norm(dim=1)[:, None, None]).float()


def signs(seed: int, index: int, channels: int) -> torch.Tensor:
    """r = ±1 per channel of image ``index``, (C,) float32, from (seed, index)."""
    g = image_generator(seed, index, SIGN_SALT)
    return torch.randint(0, 2, (channels,), generator=g).float() * 2 - 1


def fourier_heatmap(
    model: Callable[[torch.Tensor], torch.Tensor],
    dataset,
    *,
    eps: float = 4.0,
    stride: int = 1,
    seed: int = 0,
    **stream,
) -> tuple[VariantState, np.ndarray, dict[str, Any]]:
    """Evaluate every (image, frequency) not yet done. ``model``: (B, C, H, W) pixels -> (B, classes)
    logits (the run's precision applied inside); ``stream``: ``stream_variants``' keywords
    (batch_size, device, state, checkpoint, checkpoint_every_s, show_progress). Returns (state,
    cells (K, 2), stats)."""
    device = torch.device(stream.pop("device", "cpu"))
    channels, height, width = dataset[0].pixels.shape
    cells = frequency_cells(height, width, stride)
    basis = fourier_basis(height, width, cells).to(device)  # (K, H, W)

    def perturbed(x, item, start, stop):
        r = signs(seed, int(item.index), channels).to(device)[:, None, None]  # (C, 1, 1)
        return (x[None] + eps * r[None] * basis[start:stop, None]).clamp_(0, 1)

    state, stats = stream_variants(
        model, dataset, len(cells), perturbed, device=device, desc="Fourier heat map", **stream
    )
    return state, cells, stats


def _centred(f: int, n: int) -> int:
    """Frequency f mod n in [−n/2, n/2)."""
    f %= n
    return f - n if f >= n - n // 2 else f


def summarize_heatmap(state: VariantState, cells: np.ndarray, height: int, width: int) -> dict[str, Any]:
    """Per cell over the finished images: error rate (1 − top-1 accuracy) and mean Δlog p(y) =
    log p(y | x + εrU) − log p(y | x), as (K,) lists beside the cells; and the maps on the
    measured grid (rows ``u_values``, columns ``v_values``, both centred; each cell also fills
    its Hermitian partner)."""
    done = state.done == 1
    error = 1.0 - state.hit[done].mean(axis=0)
    delta = (state.logp[done] - state.clean_logp[done, None]).mean(axis=0)
    pairs = [
        ((_centred(int(u), height), _centred(int(v), width)), (_centred(-int(u), height), _centred(-int(v), width)))
        for u, v in cells
    ]
    us = sorted({uv[0] for pair in pairs for uv in pair})
    vs = sorted({uv[1] for pair in pairs for uv in pair})
    row, col = {u: k for k, u in enumerate(us)}, {v: k for k, v in enumerate(vs)}
    maps = {"error_rate": np.full((len(us), len(vs)), np.nan), "delta_logp": np.full((len(us), len(vs)), np.nan)}
    for pair, e, d in zip(pairs, error, delta):
        for uu, vv in pair:
            maps["error_rate"][row[uu], col[vv]], maps["delta_logp"][row[uu], col[vv]] = e, d
    return {
        "cells": cells.tolist(),
        "error_rate": error.tolist(),
        "delta_logp_nats": delta.tolist(),
        "n_images": int(done.sum()),
        "clean_error_rate": float(1.0 - state.clean_hit[done].mean()),
        "u_values": us,
        "v_values": vs,
        "maps": {k: v.tolist() for k, v in maps.items()},
    }


def heatmap_figure(summary: dict[str, Any]):
    """Two centred maps (frequency 0 in the middle): error rate and mean Δlog p(y); a matplotlib figure."""
    from .display import _plt

    plt = _plt()
    err = np.asarray(summary["maps"]["error_rate"], dtype=float)
    dl = np.asarray(summary["maps"]["delta_logp"], dtype=float)
    us, vs = summary["u_values"], summary["v_values"]
    step = summary.get("stride", 1)
    extent = (vs[0] - step / 2, vs[-1] + step / 2, us[-1] + step / 2, us[0] - step / 2)  # one block per cell
    fig, axes = plt.subplots(1, 2, figsize=(9.2, 4.0))
    span = max(float(np.nanmax(np.abs(dl))) if np.isfinite(dl).any() else 0.0, 1e-9)
    for ax, grid, title, cmap, lims in (
        (axes[0], err, "error rate", "viridis", (0.0, 1.0)),
        (axes[1], dl, "mean Δ log p(y) (nats)", "RdBu", (-span, span)),
    ):
        masked = np.ma.masked_invalid(grid)
        im = ax.imshow(masked, cmap=cmap, vmin=lims[0], vmax=lims[1], extent=extent, interpolation="nearest")
        ax.set_xlabel("horizontal frequency v")
        ax.set_ylabel("vertical frequency u")
        ax.set_title(f"{title}, ε = {summary['eps']:g}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    fig.tight_layout()
    return fig


def plot_heatmap(summary: dict[str, Any], path: str | os.PathLike) -> Path:
    """heatmap_figure as a PNG file."""
    from .display import _plt

    fig = heatmap_figure(summary)
    path = Path(path)
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def save_heatmap(summary: dict[str, Any], out: Path) -> None:
    atomic_write(out / HEATMAP_JSON, json.dumps(summary, allow_nan=True))


def run_heatmap(
    model,
    data,
    *,
    eps: float = 4.0,
    stride: int = 1,
    seed: int = 0,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
    **options,
) -> dict[str, Any] | None:
    """The Fourier heat map of ``model`` over ``data`` (the forms ``iaside.explain`` takes); says
    the cost first. ``options``: ``iaside.explain``'s options that apply (``variants.PASS_OPTIONS``:
    labels, samples, the source options, batch_size, device, precision, out, show_progress). With ``out``: resumes from and writes
    heatmap.json, heatmap.png and the checkpoint there (a run folder, so the report shows the
    map beside the run). Returns the summary (None for ``dry_run``)."""
    if eps <= 0:
        raise IasideError(f"--eps must be positive, got {eps}")
    run = VariantsRun.resolve(model, data, seed=seed, **options)
    _, height, width = run.dataset[0].pixels.shape
    n, n_cells = len(run.dataset), len(frequency_cells(height, width, stride))
    say(
        f"Fourier heat map: {n} images × {n_cells} frequencies ({height}×{width} grid up to Hermitian symmetry, "
        f"stride {stride}) = {n * n_cells} forward passes, plus {n} clean passes; ε = {eps:g}"
    )
    if dry_run:
        return None
    identity = run.identity(eps=eps, stride=stride, seed=seed)
    stream = run.stream(identity, "heatmap-run.json", HEATMAP_STATE, "a heat map")
    state, cells, stats = fourier_heatmap(run.forward(), run.dataset, eps=eps, stride=stride, seed=seed, **stream)
    summary = {
        **summarize_heatmap(state, cells, height, width),
        "eps": eps,
        "stride": stride,
        "seed": seed,
        **run.session(identity, stats),
    }
    if run.folder is not None:
        state.save(run.folder / HEATMAP_STATE)
        save_heatmap(summary, run.folder)
        plot_heatmap(summary, run.folder / HEATMAP_PNG)
    return summary
