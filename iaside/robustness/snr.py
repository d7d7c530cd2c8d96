"""Spectral SNR of perturbations per band and on a finer radial grid (docs/method.md §7).

For a clean image x and a perturbed copy x̃: SNR_i = 10·log10(ESD_i(x) / ESD_i(x̃ − x)) dB,
with ESD from ``spectral.band_energy`` (the bands are defined there only). Curves are the mean
over images of the per-image dB. The decay is summarised by least-squares lines: dB versus
band index (slope in dB per band: a straight line is an exponential decay of the linear
SNR) and, on the fine grid, dB versus normalised radius (exponential) and versus log10
radius (power law), each with R².
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import DEFAULT_BANDS
from ..errors import IasideError
from ..spectral import band_energy, band_masks, radial_grid_masks
from .attacks import Attack, check_differentiable, format_eps, pgd
from .corruptions import check_severities, corrupt_images, corruption_names, family_of, quantize
from .report import load_written

SNR_JSON = "snr.json"
SNR_CSV = "snr.csv"
GRID_CSV = "snr_grid.csv"
DEFAULT_RINGS = 32


def fit_line(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Least-squares y = slope·x + intercept over the finite y, with R²; NaN with fewer than 2 points."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(y) & np.isfinite(x)
    nan = float("nan")
    if ok.sum() < 2:
        return {"slope": nan, "intercept": nan, "r2": nan, "n_points": int(ok.sum())}
    xs, ys = x[ok], y[ok]
    slope, intercept = np.polyfit(xs, ys, 1)
    residual = ys - (slope * xs + intercept)
    total = np.sum((ys - ys.mean()) ** 2)
    r2 = 1.0 - np.sum(residual**2) / total if total > 0 else nan
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(r2), "n_points": int(ok.sum())}


def mean_db(per_image_db: np.ndarray) -> np.ndarray:
    """Mean over images of dB, (N, K) -> (K,): +inf when any image's perturbation has no energy there."""
    with np.errstate(invalid="ignore"):
        return np.asarray(per_image_db, np.float64).mean(axis=0)


def ring_centres(n_rings: int) -> np.ndarray:
    """Normalised radius at the middle of each ring of ``radial_grid_masks``, (R,)."""
    return (np.arange(n_rings) + 0.5) / n_rings


@dataclass
class SnrCurve:
    """Mean spectral SNR of one perturbation at one level over the images.

    band_db: (M,) mean dB per band; band_db_sd: (M,) standard deviation over images;
    grid_db: (R,) mean dB per ring; fits: band (dB/band), grid_exponential (dB per unit
    radius), grid_power (dB per decade of radius).
    """

    name: str
    family: str
    level: str
    band_db: np.ndarray
    band_db_sd: np.ndarray
    grid_db: np.ndarray
    n_images: int
    fits: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_per_image(cls, name, family, level, band_db, grid_db, n_bands, n_rings) -> SnrCurve:
        band = mean_db(band_db)
        grid = mean_db(grid_db)
        with np.errstate(invalid="ignore"):
            sd = np.asarray(band_db, np.float64).std(axis=0)
        r = ring_centres(n_rings)
        fits = {
            "band": fit_line(np.arange(n_bands), band),
            "grid_exponential": fit_line(r, grid),
            "grid_power": fit_line(np.log10(r), grid),
        }
        return cls(name, family, str(level), band, sd, grid, int(np.asarray(band_db).shape[0]), fits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "level": self.level,
            "n_images": self.n_images,
            "band_db": _floats(self.band_db),
            "band_db_sd": _floats(self.band_db_sd, missing=np.nan),
            "grid_db": _floats(self.grid_db),
            "fits": self.fits,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SnrCurve:
        return cls(
            d["name"],
            d["family"],
            d["level"],
            _array(d["band_db"]),
            _array(d["band_db_sd"], missing=np.nan),  # a SD over images with +inf among them is undefined
            _array(d["grid_db"]),
            d["n_images"],
            d["fits"],
        )


def _floats(a, missing: float = np.inf) -> list:
    """JSON-safe list: ``missing`` is written as null (+inf for SNRs in dB: a perturbation with
    no energy in that band; NaN for their SDs), any other non-finite value as "inf", "-inf"
    (a clean image with no energy there) or "nan"."""

    def cell(v: float) -> float | str | None:
        if np.isfinite(v):
            return float(v)
        return None if v == missing or (np.isnan(v) and np.isnan(missing)) else str(v)  # "inf", "-inf", "nan"

    return [cell(v) for v in np.asarray(a, np.float64)]


def _array(values, missing: float = np.inf) -> np.ndarray:
    """A list of ``_floats`` back: null is ``missing``; "inf", "-inf" and "nan" are themselves."""
    return np.array([missing if v is None else float(v) for v in values], np.float64)


@dataclass(repr=False)
class SnrResult:
    """Every SNR curve of one run, with what was measured on what."""

    n_bands: int
    partition: str
    n_rings: int
    data: dict[str, Any]
    model: dict[str, Any] | None
    seed: int
    curves: list[SnrCurve]

    def __repr__(self) -> str:
        from .views import snr_repr

        return snr_repr(self)

    def _repr_html_(self) -> str:
        from .views import snr_html

        return snr_html(self)

    def plot(self, ax=None):
        """A matplotlib Figure: SNR (dB) per band per family (and, without ``ax``, on the radial grid)."""
        from .views import snr_figure

        return snr_figure(self, ax)

    def to_pandas(self, rows: str = "name"):
        """One row per perturbation ('name'), family ('family') or perturbation and level ('level'): dB per band, fit."""
        from .views import snr_frame

        return snr_frame(self, rows)

    def _pooled(self, members: list[SnrCurve], name: str, family: str, level: str) -> SnrCurve:
        """The mean of ``members``' curves, with the decay fits redone on the mean."""
        band = np.mean([c.band_db for c in members], axis=0)
        grid = np.mean([c.grid_db for c in members], axis=0)
        sd = np.mean([c.band_db_sd for c in members], axis=0)
        r = ring_centres(self.n_rings)
        fits = {
            "band": fit_line(np.arange(self.n_bands), band),
            "grid_exponential": fit_line(r, grid),
            "grid_power": fit_line(np.log10(r), grid),
        }
        return SnrCurve(name, family, level, band, sd, grid, members[0].n_images, fits)

    def families(self) -> dict[str, SnrCurve]:
        """One curve per family: the mean of its members' curves over all their levels."""
        return {
            fam: self._pooled([c for c in self.curves if c.family == fam], fam, fam, "all")
            for fam in dict.fromkeys(c.family for c in self.curves)
        }

    def by_name(self) -> dict[str, SnrCurve]:
        """One curve per perturbation (a corruption, or one attack norm): mean over its levels."""
        out = {}
        for name in dict.fromkeys(c.name for c in self.curves):
            members = [c for c in self.curves if c.name == name]
            out[name] = self._pooled(members, name, members[0].family, "mean")
        return out

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "n_bands": self.n_bands,
            "partition": self.partition,
            "n_rings": self.n_rings,
            "data": self.data,
            "model": self.model,
            "seed": self.seed,
            "ring_centres": ring_centres(self.n_rings).tolist(),
            "curves": [c.to_dict() for c in self.curves],
            "families": {k: c.to_dict() for k, c in self.families().items()},
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> SnrResult:
        return cls(
            d["n_bands"],
            d["partition"],
            d["n_rings"],
            d["data"],
            d["model"],
            d["seed"],
            [SnrCurve.from_dict(c) for c in d["curves"]],
        )

    def save(self, out_dir: str | os.PathLike) -> Path:
        """snr.json (everything; +inf written as null), snr.csv (one row per perturbation and level,
        dB per band and the fits) and snr_grid.csv (dB per ring)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / SNR_JSON).write_text(json.dumps(self.to_json_dict(), indent=1))
        with open(out / SNR_CSV, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                [
                    "perturbation",
                    "family",
                    "level",
                    "n_images",
                    *[f"band{i}_db" for i in range(self.n_bands)],
                    "slope_db_per_band",
                    "r2_band",
                    "grid_slope_db_per_radius",
                    "r2_grid_exponential",
                    "grid_slope_db_per_decade",
                    "r2_grid_power",
                ]
            )
            for c in self.curves:
                f = c.fits
                w.writerow(
                    [
                        c.name,
                        c.family,
                        c.level,
                        c.n_images,
                        *[f"{v:.4f}" for v in c.band_db],
                        *[
                            f"{f[k][q]:.4f}"
                            for k in ("band", "grid_exponential", "grid_power")
                            for q in ("slope", "r2")
                        ],
                    ]
                )
        with open(out / GRID_CSV, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["perturbation", "family", "level", *[f"r{r:.4f}" for r in ring_centres(self.n_rings)]])
            for c in self.curves:
                w.writerow([c.name, c.family, c.level, *[f"{v:.4f}" for v in c.grid_db]])
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> SnrResult:
        return load_written(
            path,
            SNR_JSON,
            cls.from_json_dict,
            "pass the --out folder of `iaside snr`",
            "an snr.json written by `iaside snr`",
        )

    def table(self, rows: str = "name") -> str:
        """Markdown table: one row per perturbation (mean over levels) or per family; dB per band, fit."""
        curves = self.by_name() if rows == "name" else self.families()
        head = [
            "perturbation",
            "family",
            *[f"b{i}" for i in range(self.n_bands)],
            "dB/band",
            "R²",
            "R² exp (grid)",
            "R² power (grid)",
        ]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in curves.values():
            f = c.fits
            cells = [
                c.name,
                c.family,
                *[_db(v) for v in c.band_db],
                f"{f['band']['slope']:+.2f}",
                f"{f['band']['r2']:.2f}",
                f"{f['grid_exponential']['r2']:.2f}",
                f"{f['grid_power']['r2']:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _db(v: float) -> str:
    return "inf" if np.isposinf(v) else f"{v:.1f}"


class SnrMeter:
    """Per-image SNR of perturbed copies of fixed clean images, on the M bands and the fine grid.

    The clean energies are computed once; ``measure(perturbed)`` gives what
    ``spectral.snr_db(clean, perturbed, masks)`` gives for the bands and for the rings.
    """

    def __init__(
        self, clean: torch.Tensor, n_bands: int = DEFAULT_BANDS, partition: str = "linf", n_rings: int | None = None
    ):
        if partition not in ("linf", "l2"):
            raise IasideError(f"SNR bands need a radial partition (linf or l2), got {partition!r}")
        h, w = clean.shape[-2:]
        self.clean = clean
        self.masks = band_masks(h, w, n_bands, partition)
        self.n_rings = n_rings or min(DEFAULT_RINGS, min(h, w) // 2)
        if not 1 <= self.n_rings <= min(h, w) // 2:
            raise IasideError(
                f"--rings must be between 1 and {min(h, w) // 2} for {h}x{w} images (every ring "
                f"needs a frequency), got {self.n_rings}"
            )
        self.grid = radial_grid_masks(h, w, self.n_rings, partition)
        self._signal_db = [10.0 * torch.log10(band_energy(clean, m)) for m in (self.masks, self.grid)]

    def measure(self, perturbed: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(band dB (N, M), ring dB (N, R)) float64; +inf where Δx has no energy."""
        delta = perturbed.to(self.clean.dtype) - self.clean
        band, ring = (
            (s - 10.0 * torch.log10(band_energy(delta, m))).cpu().numpy()
            for s, m in zip(self._signal_db, (self.masks, self.grid))
        )
        return band, ring


def measure_snr(
    images: torch.Tensor,
    *,
    corruptions: Sequence[str] = (),
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    attacks: Sequence[Attack] = (),
    model: nn.Module | None = None,
    labels: np.ndarray | None = None,
    n_bands: int = DEFAULT_BANDS,
    partition: str = "linf",
    n_rings: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    data: dict | None = None,
    model_info: dict | None = None,
    show_progress: bool = False,
) -> SnrResult:
    """Per-band and per-ring SNR of every corruption × severity and every attack, (N, C, H, W) images.

    Images are quantised to 8 bits first, so a corruption's Δx is exactly what it changed.
    Attacks need ``model`` (a Classifier: pixels in [0, 1]) and ``labels`` (N,) int64 (the
    class each image is attacked away from).
    """
    corruptions = corruption_names(list(corruptions))
    if corruptions:
        severities = check_severities(severities)
    if attacks and model is None:
        raise IasideError("adversarial SNR needs a model: pass --model, or --linf-eps none --l2-eps none")
    clean = quantize(images.detach().to(torch.float32))
    meter = SnrMeter(clean, n_bands, partition, n_rings)
    curves: list[SnrCurve] = []

    def add(name, family, level, perturbed):
        band, ring = meter.measure(perturbed)
        curves.append(SnrCurve.from_per_image(name, family, level, band, ring, n_bands, meter.n_rings))

    from tqdm.auto import tqdm

    todo = [(c, s) for c in corruptions for s in severities]
    for c, s in tqdm(todo, desc="corruptions", disable=not show_progress, leave=False):
        add(c, family_of(c), s, corrupt_images(clean, c, s, seed=seed))
    if attacks:
        if labels is None:
            raise IasideError("adversarial SNR needs labels (or predicted labels) for the images")
        assert model is not None  # refused above when attacks are asked for without a model
        check_differentiable(model, clean)
        target = torch.as_tensor(np.asarray(labels, np.int64), device=clean.device)
        for attack in tqdm(attacks, desc="attacks", disable=not show_progress, leave=False):
            adv = pgd(model, clean, target, attack, seed=seed, batch_size=batch_size)
            add(f"pgd-{attack.norm}", f"pgd-{attack.norm}", format_eps(attack.eps, attack.norm), adv)
    return SnrResult(n_bands, partition, meter.n_rings, data or {"shape": list(clean.shape)}, model_info, seed, curves)
