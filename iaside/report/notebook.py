"""What a notebook shows for a result: a short repr, an HTML view, DataFrames.

``Result``, ``RobustnessReport`` and ``SnrResult`` delegate their ``__repr__``,
``_repr_html_`` and ``to_pandas`` here; the pictures come from ``figures`` (the report's own
figure functions), so a notebook and the report draw the same thing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..display import pandas
from ..errors import IasideError
from . import figures

_STYLE = (
    "<style>.iaside td,.iaside th{padding:2px 8px;text-align:right;font-variant-numeric:tabular-nums}"
    ".iaside .bad{background:#fff5f5;border-left:4px solid #c53030;padding:4px 8px}"
    ".iaside .muted{color:#4a5568;font-size:0.9em}</style>"
)


def _ci(est, signed: bool = False, digits: int = 4) -> str:
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    low, high = float(est.low), float(est.high)
    text = f.format(float(est.value))
    return text + (f" [{f.format(low)}, {f.format(high)}]" if np.isfinite(low) and np.isfinite(high) else "")


def result_repr(r) -> str:
    """One line: model, data, N, M, score with its interval, and whether it is informative."""
    ci = int(round(100 * r.config.get("confidence", 0.95)))
    flag = "" if r.informative else ", NOT INFORMATIVE"
    return (
        f"<iaside.Result model={r.model.get('spec')!s} data={r.data.get('spec')!s} N={r.data.get('n_images')} "
        f"M={r.n_bands} score={_ci(r.score)} ({ci}% CI){flag}>"
    )


def result_html(r) -> str:
    """The notebook view: header, the interpretation (or that there is none), the SID bars, the band table."""
    from .markup import _e, _img
    from .run_section import band_table_html, interpretation_html

    head = (
        f"<b>I-ASIDE</b> {_e(r.model.get('spec'))} on {_e(r.data.get('spec'))}: N = {_e(r.data.get('n_images'))}, "
        f"M = {r.n_bands}, fill {_e(r.config.get('fill'))}, partition {_e(r.config.get('partition'))}<br>"
        f"score {_e(_ci(r.score))}, score_signed {_e(_ci(r.score_signed, signed=True))}"
        + ("" if r.clean_accuracy is None else f", clean top-1 {r.clean_accuracy:.3f}")
        + f'<br><span class="muted">{_e(r.estimator_line())}</span>'
    )
    reading = interpretation_html(r).replace('class="uninformative"', 'class="bad"')
    png = figures.png(figures.plot(r, "sid"))
    return (
        f'{_STYLE}<div class="iaside"><p>{head}</p>{reading}'
        f'<div style="display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap">'
        f'<div style="max-width:520px">{_img(png, "SID")}</div><div>{band_table_html(r)}</div></div></div>'
    )


def band_frame(r):
    """One row per band: SID, φ (nats) and the signed share φ/Σφ, each with its interval, and
    whether the paper's min-shift sets the band's SID to 0."""
    pd = pandas()
    columns: dict[str, Any] = {"band": np.arange(r.n_bands)}
    for name, est in (("sid", r.sid), ("phi_nats", r.phi), ("share", r.shares)):
        columns[name] = np.asarray(est.value, dtype=np.float64)
        columns[f"{name}_low"] = np.asarray(est.low, dtype=np.float64)
        columns[f"{name}_high"] = np.asarray(est.high, dtype=np.float64)
    columns["min_shift"] = np.arange(r.n_bands) == r.min_shift_band()
    return pd.DataFrame(columns).set_index("band")


def image_frame(r):
    """One row per image: name, data-set index, label, clean top-1, whether it is right, the
    log-probabilities of the label without and with every band (nats), Σφ and φ per band (nats)."""
    from ..summary import score_signed, sid_from_phi

    pd = pandas()
    pi = r.per_image
    if "phi_per_image" not in pi:
        raise IasideError("this result has no per-image values (per_image.npz is missing from its folder)")
    phi = np.asarray(pi["phi_per_image"], dtype=np.float64)
    columns: dict[str, Any] = {"name": np.asarray(pi["names"]).astype(str), "index": np.asarray(pi["index"])}
    columns["label"] = np.asarray(pi["label"])
    columns["clean_top1"] = np.asarray(pi["clean_top1"])
    columns["correct"] = columns["label"] == columns["clean_top1"]
    if "logp_nats" in pi and r.estimator.get("name", "exact") == "exact":
        columns["logp_empty_nats"] = np.asarray(pi["logp_nats"])[:, 0]
        columns["logp_full_nats"] = np.asarray(pi["logp_nats"])[:, -1]
    columns["phi_total_nats"] = phi.sum(axis=1)
    columns["score_signed"] = score_signed(sid_from_phi(phi), float(r.config.get("beta", 0.75)))
    for i in range(phi.shape[1]):
        columns[f"phi_{i}"] = phi[:, i]
    return pd.DataFrame(columns)
