"""The result of a run: plain attributes, ``result.json`` + ``per_image.npz``, lossless round trip."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import DataConfig
from .errors import IasideError
from .log import warn
from .runs import atomic_write, owner
from .summary import Estimate, interpret, total_estimate
from .validate import CHECKSUM_KEY, content_checksum, edited_note, read_per_image, read_result_json

RESULT_JSON = "result.json"
PER_IMAGE_NPZ = "per_image.npz"
SID_PNG = "sid.png"
_ESTIMATES = ("phi", "sid", "shares", "score", "score_signed")


@dataclass(repr=False)
class Result:
    """I-ASIDE of one model on one data set.

    v_nats: (K_c,) mean log p(y | x_S) per coalition evaluated on every image, whose bit masks
    are ``coalitions`` (K_c,) (all 2**M in order for the exact estimator; for per-image draws
    only the empty and grand coalitions); phi (M,) nats, sid (M,), shares (M,), score,
    score_signed: ``Estimate`` with bootstrap intervals; per_class: {label: {n, phi, sid}};
    per-image arrays (not in JSON): logp_nats (N, K) in the order of each image's coalitions
    (``iaside.estimators.estimator_from_config(config).masks(index)``), phi_per_image (N, M),
    label (N,), clean_top1 (N,), index (N,), names (N,). interpretation: {informative, why,
    sentence} (``iaside.summary.interpret``), worked out from the rest when not given.
    Exact runs also carry interactions {"index": Estimate (M, M), "mobius": Estimate (2**M,)}
    (``iaside.interactions``; per image: interactions_per_image (N, M, M)) and band_limited
    (``iaside.bandlimited.band_limited``; per image: top1_hit (N, 2**M), top1_recorded (N,)).
    """

    config: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any]
    meta: dict[str, Any]
    v_nats: np.ndarray
    phi: Estimate
    sid: Estimate
    shares: Estimate
    score: Estimate
    score_signed: Estimate
    per_class: dict[int, dict[str, Any]]
    clean_accuracy: float | None
    efficiency_gap: float
    coalitions: np.ndarray | None = None
    estimator: dict[str, Any] = field(default_factory=lambda: {"name": "exact"})
    interactions: dict[str, Estimate] | None = None
    band_limited: dict[str, Any] | None = None
    per_image: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    interpretation: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.interpretation is None:
            self.interpretation = self.interpret()

    @property
    def n_bands(self) -> int:
        return len(np.asarray(self.sid.value))

    def __repr__(self) -> str:
        from .report.notebook import result_repr

        return result_repr(self)

    def _repr_html_(self) -> str:
        from .report.notebook import result_html

        return result_html(self)

    def plot(self, kind: str = "sid", ax=None):
        """A matplotlib Figure, the report's own: kind 'sid', 'phi', 'coalitions' (v(S) against
        coalition size) or 'per-class' (heat map); drawn into ``ax`` when given."""
        from .report.figures import plot

        return plot(self, kind, ax)

    def to_pandas(self):
        """One row per band: SID, φ (nats), share φ/Σφ with their intervals, min_shift (pandas DataFrame)."""
        from .report.notebook import band_frame

        return band_frame(self)

    def per_image_frame(self):
        """One row per image: name, index, label, clean top-1, log p of the label (nats), Σφ, φ per band."""
        from .report.notebook import image_frame

        return image_frame(self)

    @property
    def informative(self) -> bool:
        assert self.interpretation is not None  # set in __post_init__
        return bool(self.interpretation["informative"])

    def total(self) -> Estimate:
        """Σφ = v(N) − v(∅) (nats) with its bootstrap interval over images (no interval without
        per-image values)."""
        phi_img = self.per_image.get("phi_per_image")
        if phi_img is None or len(phi_img) == 0:
            return Estimate(float(np.sum(self.phi.value)), float("nan"), float("nan"))
        return total_estimate(
            np.asarray(phi_img, dtype=np.float64),
            n_bootstrap=int(self.config.get("n_bootstrap", 1000)),
            confidence=float(self.config.get("confidence", 0.95)),
            seed=int(self.config.get("seed", 0)),
        )

    def chance_accuracy(self) -> float | None:
        """Top-1 accuracy of always answering the most frequent label of these images (given labels)."""
        labels = self.per_image.get("label")
        if self.clean_accuracy is None:
            return None
        if labels is None or len(labels) == 0:
            k = self.model.get("num_classes")
            return 1.0 / k if k else None
        return float(np.unique(np.asarray(labels), return_counts=True)[1].max() / len(labels))

    def interpret(self) -> dict[str, Any]:
        """{informative, why, sentence}: whether there is anything to read here, and what."""
        labels = self.per_image.get("label")
        seen = len(np.unique(labels)) if labels is not None and len(labels) else len(self.per_class)
        return interpret(
            phi=np.asarray(self.phi.value, dtype=np.float64),
            sid=np.asarray(self.sid.value, dtype=np.float64),
            total=self.total(),
            score_estimate=self.score,
            score_signed_estimate=self.score_signed,
            clean_accuracy=self.clean_accuracy,
            chance_accuracy=self.chance_accuracy(),
            n_classes_seen=seen,
            n_classes_model=self.model.get("num_classes"),
            beta=float(self.config.get("beta", 0.75)),
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "model": self.model,
            "data": self.data,
            "meta": self.meta,
            "v_nats": np.asarray(self.v_nats).tolist(),
            **{k: getattr(self, k).to_dict() for k in _ESTIMATES},
            "per_class": {
                str(k): {"n": int(c["n"]), "phi": np.asarray(c["phi"]).tolist(), "sid": np.asarray(c["sid"]).tolist()}
                for k, c in self.per_class.items()
            },
            "clean_accuracy": self.clean_accuracy,
            "efficiency_gap": self.efficiency_gap,
            "coalitions": None if self.coalitions is None else np.asarray(self.coalitions).tolist(),
            "estimator": self.estimator,
            "interpretation": self.interpretation,
            **_views_to_json(self),
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any], per_image: dict[str, np.ndarray] | None = None) -> Result:
        return cls(
            config=d["config"],
            model=d["model"],
            data=d["data"],
            meta=d["meta"],
            v_nats=np.asarray(d["v_nats"], dtype=np.float64),
            **{k: Estimate.from_dict(d[k]) for k in _ESTIMATES},  # type: ignore[arg-type]
            per_class={
                int(k): {"n": c["n"], "phi": np.asarray(c["phi"]), "sid": np.asarray(c["sid"])}
                for k, c in d["per_class"].items()
            },
            clean_accuracy=d["clean_accuracy"],
            efficiency_gap=d["efficiency_gap"],
            coalitions=None if d.get("coalitions") is None else np.asarray(d["coalitions"], dtype=np.int64),
            estimator=d.get("estimator", {"name": "exact"}),
            **_views_from_json(d),
            per_image=per_image or {},
            interpretation=d.get("interpretation"),
        )

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write result.json (with a checksum of its content) and per_image.npz into ``out_dir``
        (atomically each, as the folder's owner: ``runs.owner``); returns the folder."""
        with owner(out_dir) as out:
            doc = self.to_json_dict()
            doc[CHECKSUM_KEY] = content_checksum(doc, self.per_image)
            atomic_write(out / RESULT_JSON, json.dumps(doc, indent=1, allow_nan=True))
            if self.per_image:
                atomic_write(out / PER_IMAGE_NPZ, lambda fh: np.savez_compressed(fh, **self.per_image))  # type: ignore[arg-type]
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> Result:
        """Read a run folder (or its result.json)."""
        path = Path(path)
        folder = path.parent if path.name == RESULT_JSON else path
        file = folder / RESULT_JSON
        if not file.exists() and not file.is_symlink():
            raise IasideError(f"{file} does not exist: is {folder} the --out folder of a finished run?")
        d, m = read_result_json(file)
        per_image = None
        if (folder / PER_IMAGE_NPZ).exists():
            per_image = read_per_image(folder / PER_IMAGE_NPZ, d["data"]["n_images"], m)
        edited = edited_note(d, per_image, folder)
        if edited:
            warn(edited)
        return cls.from_json_dict(d, per_image)

    def low_band_share(self, n_low: int | None = None) -> float:
        """SID mass on the lowest ``n_low`` bands (default: the lower quarter, at least one)."""
        n_low = n_low or max(1, self.n_bands // 4)
        return float(np.sum(np.asarray(self.sid.value)[:n_low]))

    def score_columns(self) -> dict[str, float]:
        """score and score_signed with their interval ends as flat table columns: score,
        score_low, score_high, score_signed, score_signed_low, score_signed_high."""
        return {
            f"{name}{end}": float(getattr(getattr(self, name), part))
            for name in ("score", "score_signed")
            for end, part in (("", "value"), ("_low", "low"), ("_high", "high"))
        }

    def estimator_line(self) -> str:
        """How φ was estimated, in one line: exact, or the sampling estimator with its cost."""
        e = self.estimator or {"name": "exact"}
        m = self.n_bands
        if e.get("name", "exact") == "exact":
            return f"estimator: exact Shapley values (all {2**m} coalitions per image)"
        detail = [f"{e.get('passes_per_image')} coalition passes per image"] if e.get("passes_per_image") else []
        if e.get("permutations"):
            detail.append(f"{e['permutations']} antithetic permutations")
        if e.get("coalitions"):
            detail.append(f"{e['coalitions']} coalitions")
        if e.get("draws"):
            detail.append(f"draws {e['draws']}")
        se = [v for v in e.get("phi_se") or [] if v is not None]
        if se:
            detail.append(f"largest φ standard error {max(se):.1e} nats")
        return f"estimator: {e['name']} ({', '.join(detail)})"

    def min_shift_band(self) -> int:
        """The band with the smallest φ: the paper's SID (ψ = φ − min φ) gives it 0 by construction."""
        return int(np.argmin(self.phi.value))

    def table(self) -> str:
        """A short table a person reads in a terminal, and one sentence of interpretation (or
        a plain statement that there is nothing to interpret)."""
        m = self.n_bands
        lines = [
            f"I-ASIDE  model={self.model.get('spec')}  data={self.data.get('spec')}  "
            f"images={self.data.get('n_images')}  M={m}  fill={self.config.get('fill')}  "
            f"partition={self.config.get('partition')}"
            + (f"  preset={self.config['preset']}" if self.config.get("preset") else ""),
            self.estimator_line(),
        ]
        if self.data.get("data_config"):
            lines.append(
                "preprocessing: "
                + DataConfig.from_dict(self.data["data_config"], self.data.get("data_config_sources")).pipeline()
            )
        if self.clean_accuracy is not None:
            chance = self.chance_accuracy()
            lines.append(
                f"clean top-1 accuracy: {self.clean_accuracy:.3f}"
                + (f"  (chance, the most frequent label: {chance:.3f})" if chance is not None else "")
            )
        ci = int(round(100 * self.config.get("confidence", 0.95)))
        shifted = self.min_shift_band()
        lines.append(f"{'band':>4}  {'phi (nats)':>25}  {'φ/Σφ':>7}  {'SID':>20}")
        for i in range(m):
            lines.append(
                f"{i:>4}  {self.phi.value[i]:>+10.4f} [{self.phi.low[i]:+.4f},{self.phi.high[i]:+.4f}]"  # type: ignore[index]
                f"  {self.shares.value[i]:>+7.3f}"  # type: ignore[index]
                f"  {self.sid.value[i]:>6.3f} [{self.sid.low[i]:.3f},{self.sid.high[i]:.3f}]"  # type: ignore[index]
                + ("  *" if i == shifted else "")
            )
        lines.append(
            f"* band {shifted} has the smallest φ: the paper's SID shifts every φ by it (ψ = φ − min φ), so "
            "its SID is 0 by construction; φ/Σφ is the signed share that keeps it."
        )
        lines.append(
            f"score        {float(self.score.value):.4f}  ({ci}% CI {float(self.score.low):.4f} – {float(self.score.high):.4f})"
        )
        lines.append(
            f"score_signed {float(self.score_signed.value):+.4f}  ({ci}% CI {float(self.score_signed.low):+.4f} – "
            f"{float(self.score_signed.high):+.4f})"
        )
        lines += outside_interval_notes(self)
        lines.append(
            f"v(N) − v(∅) = {self.v_nats[-1] - self.v_nats[0]:+.4f} nats = Σφ (efficiency gap {self.efficiency_gap:.1e})"
        )
        assert self.interpretation is not None
        if self.informative:
            lines.append(self.interpretation["sentence"])
        else:
            lines.append("NOT INFORMATIVE: " + self.interpretation["why"] + ".")
            lines.append("Nothing to interpret: the SID, φ and scores above are not evidence about this model.")
        return "\n".join(lines)


def outside_interval_notes(result: Result) -> list[str]:
    """One line when a score's point estimate lies outside its own percentile interval, saying why."""
    bounds = {
        name: [float(x) for x in (getattr(result, name).low, getattr(result, name).value, getattr(result, name).high)]
        for name in ("score", "score_signed")
    }
    outside = [
        name
        for name, (low, value, high) in bounds.items()
        if np.isfinite(low) and np.isfinite(high) and not low <= value <= high
    ]
    if not outside:
        return []
    one = len(outside) == 1
    return [
        f"note: {' and '.join(outside)} lie{'s' if one else ''} outside {'its' if one else 'their'} "
        "bootstrap percentile interval: a score is a nonlinear function of the mean φ (shifted by its minimum "
        "band, normalised), so its resampled values are biased away from the point estimate, most when the "
        "bands' φ are close relative to their noise; the interval shows the spread, the point is the estimate "
        "(docs/reliability.md)"
    ]


def _views_to_json(result: Result) -> dict[str, Any]:
    from .bandlimited import band_limited_to_json
    from .interactions import interactions_to_json

    out: dict[str, Any] = {}
    if result.interactions is not None:
        out["interactions"] = interactions_to_json(result.interactions)
    if result.band_limited is not None:
        out["band_limited"] = band_limited_to_json(result.band_limited)
    return out


def _views_from_json(d: dict[str, Any]) -> dict[str, Any]:
    from .bandlimited import band_limited_from_json
    from .interactions import interactions_from_json

    return {
        "interactions": interactions_from_json(d["interactions"]) if d.get("interactions") else None,
        "band_limited": band_limited_from_json(d["band_limited"]) if d.get("band_limited") else None,
    }
