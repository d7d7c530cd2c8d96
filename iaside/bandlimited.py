"""Band-limited views from an exact run's table: low-pass and high-pass coalitions.

Low-pass at cut-off k keeps bands {0…k}; high-pass at k keeps bands {k…M−1}. Both are among
the 2**M coalitions of the exact estimator, so their mean log p(y) (v) and top-1 accuracy
(the fraction of images whose arg-max on x_S is the label y) come from the same passes. With
the zero fill the coalition images are ideal (brick-wall) filters of the image.
"""

from __future__ import annotations

import numpy as np

from .interactions import mean_with_interval
from .summary import Estimate


def lowpass_masks(n_bands: int) -> np.ndarray:
    """Bit masks of {0…k} for k = 0…M−1, (M,) int64 (the last is the grand coalition)."""
    return (np.int64(1) << np.arange(1, n_bands + 1, dtype=np.int64)) - 1


def highpass_masks(n_bands: int) -> np.ndarray:
    """Bit masks of {k…M−1} for k = 0…M−1, (M,) int64 (the first is the grand coalition)."""
    full = np.int64(2**n_bands - 1)
    return full ^ ((np.int64(1) << np.arange(n_bands, dtype=np.int64)) - 1)


def band_limited(
    logp_nats: np.ndarray,
    top1_hit: np.ndarray | None,
    *,
    fill: str,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """v and top-1 accuracy at each low-/high-pass cut-off, with bootstrap intervals over images.

    logp_nats: (N, 2**M) in bit-mask order; top1_hit: (N, 2**M) bool for the images whose
    top-1 was recorded (None: no accuracy). Returns {"cutoff": (M,), "fill", "n_images",
    "n_images_top1", "lowpass": {"mask", "v_nats": Estimate, "accuracy": Estimate | None},
    "highpass": {...}}.
    """
    n_bands = int(round(np.log2(logp_nats.shape[1])))
    out = {
        "cutoff": np.arange(n_bands),
        "fill": fill,
        "n_images": int(len(logp_nats)),
        "n_images_top1": 0 if top1_hit is None else int(len(top1_hit)),
    }
    for name, masks in (("lowpass", lowpass_masks(n_bands)), ("highpass", highpass_masks(n_bands))):
        accuracy = None
        if top1_hit is not None and len(top1_hit):
            accuracy = mean_with_interval(np.asarray(top1_hit, np.float64)[:, masks], n_bootstrap, confidence, seed)
        out[name] = {
            "mask": masks,
            "v_nats": mean_with_interval(logp_nats[:, masks], n_bootstrap, confidence, seed),
            "accuracy": accuracy,
        }
    return out


def band_limited_to_json(curves: dict) -> dict:
    out = {
        k: (np.asarray(v).tolist() if k == "cutoff" else v)
        for k, v in curves.items()
        if k not in ("lowpass", "highpass")
    }
    for name in ("lowpass", "highpass"):
        c = curves[name]
        out[name] = {
            "mask": np.asarray(c["mask"]).tolist(),
            "v_nats": c["v_nats"].to_dict(),
            "accuracy": None if c["accuracy"] is None else c["accuracy"].to_dict(),
        }
    return out


def band_limited_from_json(d: dict) -> dict:
    out = {**d, "cutoff": np.asarray(d["cutoff"], np.int64)}
    for name in ("lowpass", "highpass"):
        c = d[name]
        out[name] = {
            "mask": np.asarray(c["mask"], np.int64),
            "v_nats": Estimate.from_dict(c["v_nats"]),
            "accuracy": None if c["accuracy"] is None else Estimate.from_dict(c["accuracy"]),
        }
    return out


def band_limited_table(curves: dict) -> str:
    """Cut-off by cut-off: low-pass and high-pass v (nats) and top-1 accuracy, with intervals."""

    def acc(c, k):
        a = c["accuracy"]
        return "     n/a" if a is None else f"{a.value[k]:.3f} [{a.low[k]:.3f},{a.high[k]:.3f}]"

    lines = [
        f"band-limited views (fill={curves['fill']}; with the zero fill these are ideal filters; "
        f"accuracy over {curves['n_images_top1']} of {curves['n_images']} images)",
        f"{'k':>3}  {'low-pass {0..k}: v (nats), top-1':<44}  {'high-pass {k..M-1}: v (nats), top-1':<44}",
    ]
    for k in curves["cutoff"]:
        cells = []
        for name in ("lowpass", "highpass"):
            c = curves[name]
            v = c["v_nats"]
            cells.append(f"{v.value[k]:+7.3f} [{v.low[k]:+.3f},{v.high[k]:+.3f}]  {acc(c, k)}")
        lines.append(f"{int(k):>3}  {cells[0]:<44}  {cells[1]:<44}")
    return "\n".join(lines)
