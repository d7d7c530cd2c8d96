"""What a notebook shows for a result: a short repr, an HTML view, DataFrames.

``Result``, ``RobustnessReport`` and ``SnrResult`` delegate their ``__repr__``,
``_repr_html_`` and ``to_pandas`` here; the pictures come from ``figures`` (the report's own
figure functions), so a notebook and the report draw the same thing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import IasideError
from . import figures

_STYLE = ("<style>.iaside td,.iaside th{padding:2px 8px;text-align:right;font-variant-numeric:tabular-nums}"
          ".iaside .bad{background:#fff5f5;border-left:4px solid #c53030;padding:4px 8px}"
          ".iaside .muted{color:#4a5568;font-size:0.9em}</style>")


def pandas():
    """The pandas module, or a clear error saying how to install it."""
    try:
        import pandas as pd
    except ImportError as err:
        from ..install import pip_hint

        raise IasideError(f"DataFrames need pandas: {pip_hint('iaside[notebook]')}") from err
    return pd


def _ci(est, signed: bool = False, digits: int = 4) -> str:
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    low, high = float(est.low), float(est.high)
    text = f.format(float(est.value))
    return text + (f" [{f.format(low)}, {f.format(high)}]" if np.isfinite(low) and np.isfinite(high) else "")


def _tight(fig):
    fig.tight_layout()
    return fig


def result_repr(r) -> str:
    """One line: model, data, N, M, score with its interval, and whether it is informative."""
    ci = int(round(100 * r.config.get("confidence", 0.95)))
    flag = "" if r.informative else ", NOT INFORMATIVE"
    return (f"<iaside.Result model={r.model.get('spec')!s} data={r.data.get('spec')!s} N={r.data.get('n_images')} "
            f"M={r.n_bands} score={_ci(r.score)} ({ci}% CI){flag}>")


def result_html(r) -> str:
    """The notebook view: header, the interpretation (or that there is none), the SID bars, the band table."""
    from .html import _e, _img, band_table_html, interpretation_html

    head = (f"<b>I-ASIDE</b> {_e(r.model.get('spec'))} on {_e(r.data.get('spec'))}: N = {_e(r.data.get('n_images'))}, "
            f"M = {r.n_bands}, fill {_e(r.config.get('fill'))}, partition {_e(r.config.get('partition'))}<br>"
            f"score {_e(_ci(r.score))}, score_signed {_e(_ci(r.score_signed, signed=True))}"
            + ("" if r.clean_accuracy is None else f", clean top-1 {r.clean_accuracy:.3f}")
            + f'<br><span class="muted">{_e(r.estimator_line())}</span>')
    reading = interpretation_html(r).replace('class="uninformative"', 'class="bad"')
    png = figures.png(figures.plot(r, "sid"))
    return (f'{_STYLE}<div class="iaside"><p>{head}</p>{reading}'
            f'<div style="display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap">'
            f'<div style="max-width:520px">{_img(png, "SID")}</div><div>{band_table_html(r)}</div></div></div>')


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


def robustness_repr(rep) -> str:
    mce = "no reference (CE/mCE need --reference)" if rep.mce is None else f"mCE {rep.mce:.3f}"
    return (f"<iaside.RobustnessReport model={rep.name} data={rep.data.get('spec')} N={rep.data.get('n_images')} "
            f"clean error {rep.clean_error:.3f}, mean corruption error {rep.mean_error:.3f}, {mce}, "
            f"{len(rep.adversarial)} attack(s)>")


def robustness_frame(rep, kind: str = "corruptions"):
    """kind 'corruptions': one row per corruption (error per severity, their mean, CE or NaN);
    'adversarial': one row per attack (norm, eps, steps, accuracy)."""
    pd = pandas()
    if kind == "adversarial":
        return pd.DataFrame([{k: a.get(k) for k in ("label", "norm", "eps", "steps", "accuracy")}
                             for a in rep.adversarial], columns=["label", "norm", "eps", "steps", "accuracy"])
    if kind != "corruptions":
        raise IasideError(f"kind {kind!r} is not one of corruptions, adversarial")
    from ..robustness.corruptions import family_of

    errors = np.asarray(rep.errors, dtype=np.float64).reshape(len(rep.corruptions), len(rep.severities))
    frame = pd.DataFrame(errors, columns=[f"error_s{s}" for s in rep.severities])
    frame.insert(0, "family", [family_of(c) for c in rep.corruptions])
    frame.insert(0, "corruption", list(rep.corruptions))
    frame["mean_error"] = errors.mean(axis=1) if errors.size else []
    ce = rep.ce
    frame["ce"] = np.full(len(rep.corruptions), np.nan) if ce is None else ce
    return frame.set_index("corruption")


def robustness_html(rep) -> str:
    from .html import _e, _img

    frame = robustness_frame(rep)
    note = ("" if rep.reference is not None else
            '<p class="muted">CE and mCE are blank: they are errors relative to a reference model, and none was '
            "given (iaside robustness --reference).</p>")
    parts = [_STYLE, '<div class="iaside">', f"<p>{_e(robustness_repr(rep))}</p>", note]
    if len(frame):
        parts.append(_img(figures.png(_tight(figures.robustness_figure(rep))), "corruption errors"))
        parts.append(frame.to_html(float_format=lambda v: f"{v:.3f}", na_rep="n/a"))
    if rep.adversarial:
        parts.append(robustness_frame(rep, "adversarial").to_html(index=False, float_format=lambda v: f"{v:.4g}"))
    return "".join(parts) + "</div>"


def snr_repr(res) -> str:
    n = res.curves[0].n_images if res.curves else 0
    return (f"<iaside.SnrResult data={res.data.get('spec')} N={n} M={res.n_bands} {res.partition} "
            f"{len(res.curves)} curves in {len(res.families())} families>")


def snr_frame(res, rows: str = "name"):
    """One row per perturbation (mean over levels; rows='name'), per family ('family') or per
    perturbation and level ('level'): SNR (dB) per band and the fitted decay (dB/band, R²)."""
    pd = pandas()
    if rows not in ("name", "family", "level"):
        raise IasideError(f"rows {rows!r} is not one of name, family, level")
    curves = {"name": lambda: list(res.by_name().values()), "family": lambda: list(res.families().values()),
              "level": lambda: list(res.curves)}[rows]()
    records = []
    for c in curves:
        rec = {"perturbation": c.name, "family": c.family, "level": c.level, "n_images": c.n_images}
        rec.update({f"db_band{i}": float(v) for i, v in enumerate(c.band_db)})
        rec.update({"db_per_band": c.fits["band"]["slope"], "r2": c.fits["band"]["r2"]})
        records.append(rec)
    return pd.DataFrame(records)


def snr_html(res) -> str:
    from .html import _e, _img

    return (f'{_STYLE}<div class="iaside"><p>{_e(snr_repr(res))}</p>'
            + _img(figures.png(_tight(figures.snr_figure(res))), "SNR per band")
            + snr_frame(res, "family").to_html(index=False, float_format=lambda v: f"{v:.2f}") + "</div>")
