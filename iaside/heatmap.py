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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import IasideError
from .fills import image_generator
from .runs import atomic_write

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


@dataclass
class HeatmapState:
    """Per image and frequency cell: logp (N, K) of the label, hit (N, K) top-1 == y; clean_logp (N,),
    clean_hit (N,), label (N,), done (N,)."""

    logp: np.ndarray
    hit: np.ndarray
    clean_logp: np.ndarray
    clean_hit: np.ndarray
    label: np.ndarray
    done: np.ndarray

    @classmethod
    def empty(cls, n_images: int, n_cells: int) -> HeatmapState:
        return cls(
            np.zeros((n_images, n_cells)),
            np.zeros((n_images, n_cells), np.int8),
            np.zeros(n_images),
            np.zeros(n_images, np.int8),
            np.zeros(n_images, np.int64),
            np.zeros(n_images, np.int64),
        )

    def save(self, path: Path) -> None:
        atomic_write(path, lambda fh: np.savez(fh, **self.__dict__))

    @classmethod
    def load(cls, path: Path) -> HeatmapState:
        try:
            with np.load(path) as z:
                return cls(**{k: z[k].copy() for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError) as err:
            raise IasideError(f"the saved heat-map state {path} is damaged ({err}); delete it to start over") from err


def stream_variants(
    model: Callable[[torch.Tensor], torch.Tensor],
    dataset,
    n_variants: int,
    variants: Callable[[torch.Tensor, Any, int, int], torch.Tensor],
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    state: HeatmapState | None = None,
    checkpoint: Callable[[HeatmapState], None] | None = None,
    checkpoint_every_s: float = 30.0,
    show_progress: bool = True,
    desc: str = "variants",
) -> tuple[HeatmapState, dict[str, Any]]:
    """log p(y) and top-1 == y of ``n_variants`` modified copies of every image not yet done.

    ``variants(x, item, start, stop)`` returns copies start…stop−1 of image x (C, H, W) on the
    device, (stop − start, C, H, W); ``model``: pixels -> logits (the run's precision inside).
    Returns (state, stats: passes (with one clean pass per image), images_this_session, seconds).
    """
    from tqdm.auto import tqdm

    from .data.base import PREDICTED

    device = torch.device(device)
    shape = tuple(dataset[0].pixels.shape)
    n = len(dataset)
    state = state or HeatmapState.empty(n, n_variants)
    todo = [i for i in range(n) if not state.done[i]]
    passes, t0, last = 0, time.perf_counter(), time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", desc=desc, disable=not show_progress, dynamic_ncols=True)
    try:
        with torch.inference_mode():
            for i in todo:
                item = dataset[i]
                x = item.pixels.to(device)
                if tuple(x.shape) != shape:
                    raise IasideError(
                        f"image {item.name!r} is {tuple(x.shape)}, the first one {shape}: resize the "
                        "data to one size (--input-size)"
                    )
                clean = model(x[None]).float()
                y = int(clean.argmax()) if item.label == PREDICTED else int(item.label)
                if not 0 <= y < clean.shape[1]:
                    raise IasideError(
                        f"image {item.name!r} has label {y}, outside the model's {clean.shape[1]} classes"
                    )
                logp, hit = np.empty(n_variants), np.empty(n_variants, np.int8)
                for s in range(0, n_variants, batch_size):
                    e = min(s + batch_size, n_variants)
                    out = model(variants(x, item, s, e)).float()
                    logp[s:e] = torch.log_softmax(out, 1)[:, y].double().cpu().numpy()
                    hit[s:e] = (out.argmax(1) == y).cpu().numpy()
                    passes += e - s
                state.logp[i], state.hit[i] = logp, hit
                state.clean_logp[i] = float(torch.log_softmax(clean, 1)[0, y])
                state.clean_hit[i], state.label[i], state.done[i] = int(clean.argmax()) == y, y, 1
                bar.update(1)
                if checkpoint is not None and time.perf_counter() - last >= checkpoint_every_s:
                    checkpoint(state)
                    last = time.perf_counter()
    except BaseException:
        if checkpoint is not None:
            checkpoint(state)
        raise
    finally:
        bar.close()
    return state, {"passes": passes + len(todo), "images_this_session": len(todo), "seconds": time.perf_counter() - t0}


def fourier_heatmap(
    model: Callable[[torch.Tensor], torch.Tensor],
    dataset,
    *,
    eps: float = 4.0,
    stride: int = 1,
    seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    state: HeatmapState | None = None,
    checkpoint: Callable[[HeatmapState], None] | None = None,
    checkpoint_every_s: float = 30.0,
    show_progress: bool = True,
) -> tuple[HeatmapState, np.ndarray, dict[str, Any]]:
    """Evaluate every (image, frequency) not yet done. ``model``: (B, C, H, W) pixels -> (B, classes)
    logits (the run's precision applied inside). Returns (state, cells (K, 2), stats)."""
    device = torch.device(device)
    channels, height, width = dataset[0].pixels.shape
    cells = frequency_cells(height, width, stride)
    basis = fourier_basis(height, width, cells).to(device)  # (K, H, W)

    def perturbed(x, item, start, stop):
        r = signs(seed, int(item.index), channels).to(device)[:, None, None]  # (C, 1, 1)
        return (x[None] + eps * r[None] * basis[start:stop, None]).clamp_(0, 1)

    state, stats = stream_variants(
        model,
        dataset,
        len(cells),
        perturbed,
        batch_size=batch_size,
        device=device,
        state=state,
        checkpoint=checkpoint,
        checkpoint_every_s=checkpoint_every_s,
        show_progress=show_progress,
        desc="Fourier heat map",
    )
    return state, cells, stats


def _centred(f: int, n: int) -> int:
    """Frequency f mod n in [−n/2, n/2)."""
    f %= n
    return f - n if f >= n - n // 2 else f


def summarize_heatmap(state: HeatmapState, cells: np.ndarray, height: int, width: int) -> dict[str, Any]:
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


def open_variants_folder(
    out: Path | None, identity: dict[str, Any], ident_name: str, state_name: str, what: str
) -> tuple[HeatmapState | None, Callable[[HeatmapState], None] | None]:
    """A variants run's folder (heat map, cut-offs): its saved state to resume (None for a new
    run) and the checkpoint that saves it; a folder holding another setting is refused."""
    if out is None:
        return None, None
    out.mkdir(parents=True, exist_ok=True)
    ident_file = out / ident_name
    state = None
    if ident_file.exists():
        if json.loads(ident_file.read_text()) != json.loads(json.dumps(identity)):
            raise IasideError(
                f"{out} holds {what} with another model, data or setting; use another --out "
                f"or delete {ident_file.name} and {state_name}"
            )
        if (out / state_name).exists():
            state = HeatmapState.load(out / state_name)
    else:
        atomic_write(ident_file, json.dumps(identity, indent=1))
    return state, lambda s: s.save(out / state_name)


def save_heatmap(summary: dict[str, Any], out: Path) -> None:
    atomic_write(out / HEATMAP_JSON, json.dumps(summary, allow_nan=True))


def run_heatmap(
    model,
    data,
    *,
    labels: str | None = None,
    samples: int | None = None,
    eps: float = 4.0,
    stride: int = 1,
    seed: int = 0,
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
    """The Fourier heat map of ``model`` over ``data`` (the forms ``iaside.explain`` takes); says
    the cost first. With ``out``: resumes from and writes heatmap.json, heatmap.png and the
    checkpoint there (a run folder, so the report shows the map beside the run). Returns the
    summary (None for ``dry_run``)."""
    from .config import ExplainConfig
    from .data.resolve import resolve_data
    from .engine import ModelRunner
    from .models.registry import resolve_model
    from .runtime import apply_malloc_fix

    apply_malloc_fix()
    if eps <= 0:
        raise IasideError(f"--eps must be positive, got {eps}")
    loaded = resolve_model(model, weights, device, data_config, overrides, num_classes, outputs)
    config = ExplainConfig.build(
        None, labels="predicted" if labels == "predicted" else "given", samples=samples, seed=seed
    )
    labels_file = labels if labels not in (None, "given", "predicted") else None
    dataset = resolve_data(data, loaded.data_config, config, labels_file, loaded.model.class_names)
    _, height, width = dataset[0].pixels.shape
    n, n_cells = len(dataset), len(frequency_cells(height, width, stride))
    say(
        f"Fourier heat map: {n} images × {n_cells} frequencies ({height}×{width} grid up to Hermitian symmetry, "
        f"stride {stride}) = {n * n_cells} forward passes, plus {n} clean passes; ε = {eps:g}"
    )
    if dry_run:
        return None
    identity = {
        "model": {"spec": loaded.spec, "fingerprint": loaded.fingerprint},
        "data": {"fingerprint": dataset.fingerprint() if hasattr(dataset, "fingerprint") else None, "n_images": n},
        "data_config": loaded.data_config.to_dict(),
        "eps": eps,
        "stride": stride,
        "seed": seed,
        "precision": precision,
        "labels": config.labels,
    }
    out = Path(out) if out is not None else None
    state, checkpoint = open_variants_folder(out, identity, "heatmap-run.json", HEATMAP_STATE, "a heat map")
    dev = torch.device(device)
    forward = ModelRunner(loaded.model, device=dev, precision=precision).logits  # the engine's model runner
    state, cells, stats = fourier_heatmap(
        forward,
        dataset,
        eps=eps,
        stride=stride,
        seed=seed,
        batch_size=batch_size,
        device=dev,
        state=state,
        checkpoint=checkpoint,
        show_progress=show_progress,
    )
    summary = {
        **summarize_heatmap(state, cells, height, width),
        "eps": eps,
        "stride": stride,
        "seed": seed,
        "model": identity["model"],
        "data_spec": getattr(dataset, "description", str(data)),
        "forward_passes_this_session": stats["passes"],
        "seconds_this_session": stats["seconds"],
    }
    if out is not None:
        state.save(out / HEATMAP_STATE)
        save_heatmap(summary, out)
        plot_heatmap(summary, out / HEATMAP_PNG)
    return summary
