"""The result of a run: plain attributes, ``result.json`` + ``per_image.npz``, lossless round trip."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IasideError
from .runs import atomic_write, owner
from .summary import Estimate

RESULT_JSON = "result.json"
PER_IMAGE_NPZ = "per_image.npz"
SID_PNG = "sid.png"
_ESTIMATES = ("phi", "sid", "shares", "score", "score_signed")


@dataclass
class Result:
    """I-ASIDE of one model on one data set.

    v_nats: (K_c,) mean log p(y | x_S) per coalition evaluated on every image, whose bit masks
    are ``coalitions`` (K_c,) (all 2**M in order for the exact estimator; for per-image draws
    only the empty and grand coalitions); phi (M,) nats, sid (M,), shares (M,), score,
    score_signed: ``Estimate`` with bootstrap intervals; per_class: {label: {n, phi, sid}};
    per-image arrays (not in JSON): logp_nats (N, K) in the order of each image's coalitions
    (``iaside.estimators.estimator_from_config(config).masks(index)``), phi_per_image (N, M),
    label (N,), clean_top1 (N,), index (N,), names (N,).
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

    @property
    def n_bands(self) -> int:
        return len(self.sid.value)

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
            **_views_to_json(self),
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any], per_image: dict[str, np.ndarray] | None = None) -> "Result":
        return cls(
            config=d["config"],
            model=d["model"],
            data=d["data"],
            meta=d["meta"],
            v_nats=np.asarray(d["v_nats"], dtype=np.float64),
            **{k: Estimate.from_dict(d[k]) for k in _ESTIMATES},
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
        )

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write result.json and per_image.npz into ``out_dir`` (atomically each, as the folder's owner:
        ``runs.owner``); returns the folder."""
        with owner(out_dir) as out:
            atomic_write(out / RESULT_JSON, json.dumps(self.to_json_dict(), indent=1, allow_nan=True))
            if self.per_image:
                atomic_write(out / PER_IMAGE_NPZ, lambda fh: np.savez_compressed(fh, **self.per_image))
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Result":
        """Read a run folder (or its result.json)."""
        path = Path(path)
        folder = path.parent if path.name == RESULT_JSON else path
        file = folder / RESULT_JSON
        if not file.exists():
            raise IasideError(f"{file} does not exist: is {folder} the --out folder of a finished run?")
        try:
            d = json.loads(file.read_text())
        except json.JSONDecodeError as err:
            raise IasideError(f"{file} is not valid JSON ({err}); rerun the analysis") from err
        per_image = None
        if (folder / PER_IMAGE_NPZ).exists():
            with np.load(folder / PER_IMAGE_NPZ, allow_pickle=False) as z:
                per_image = {k: z[k] for k in z.files}
        return cls.from_json_dict(d, per_image)

    def low_band_share(self, n_low: int | None = None) -> float:
        """SID mass on the lowest ``n_low`` bands (default: the lower quarter, at least one)."""
        n_low = n_low or max(1, self.n_bands // 4)
        return float(np.sum(self.sid.value[:n_low]))

    def table(self) -> str:
        """A short table a person reads in a terminal, and one sentence of interpretation."""
        m = self.n_bands
        lines = [
            f"I-ASIDE  model={self.model.get('spec')}  data={self.data.get('spec')}  "
            f"images={self.data.get('n_images')}  M={m}  fill={self.config.get('fill')}  "
            f"partition={self.config.get('partition')}" + (f"  preset={self.config['preset']}" if self.config.get("preset") else ""),
        ]
        if self.clean_accuracy is not None:
            lines.append(f"clean top-1 accuracy: {self.clean_accuracy:.3f}")
        ci = int(round(100 * self.config.get("confidence", 0.95)))
        lines.append(f"{'band':>4}  {'phi (nats)':>22}  {'SID':>20}")
        for i in range(m):
            lines.append(
                f"{i:>4}  {self.phi.value[i]:>+8.4f} [{self.phi.low[i]:+.3f},{self.phi.high[i]:+.3f}]"
                f"  {self.sid.value[i]:>6.3f} [{self.sid.low[i]:.3f},{self.sid.high[i]:.3f}]"
            )
        lines.append(
            f"score        {float(self.score.value):.4f}  ({ci}% CI {float(self.score.low):.4f} – {float(self.score.high):.4f})"
        )
        lines.append(
            f"score_signed {float(self.score_signed.value):+.4f}  ({ci}% CI {float(self.score_signed.low):+.4f} – "
            f"{float(self.score_signed.high):+.4f})"
        )
        lines.append(
            f"v(N) − v(∅) = {self.v_nats[-1] - self.v_nats[0]:+.4f} nats = Σφ (efficiency gap {self.efficiency_gap:.1e})"
        )
        lines.append(self.interpretation())
        return "\n".join(lines)

    def interpretation(self) -> str:
        """One plain sentence: where the predictive information sits."""
        n_low = max(1, self.n_bands // 4)
        low = self.low_band_share(n_low)
        top = int(np.argmax(self.sid.value))
        lean = "robust low-frequency" if float(self.score_signed.value) > 0 else "non-robust high-frequency"
        return (
            f"The lowest {n_low} of {self.n_bands} bands carry {100 * low:.0f}% of the spectral importance "
            f"(uniform would be {100 * n_low / self.n_bands:.0f}%); band {top} matters most, "
            f"so the model leans on {lean} features (score_signed {float(self.score_signed.value):+.2f})."
        )


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

    return {"interactions": interactions_from_json(d["interactions"]) if d.get("interactions") else None,
            "band_limited": band_limited_from_json(d["band_limited"]) if d.get("band_limited") else None}
