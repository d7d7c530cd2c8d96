"""One run's section of the report: its interpretation, key numbers, configuration, the band
table (SID and φ with intervals), its figures and views, and the images whose own SID deviates
most from the global one, with their band images."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..summary import sid_from_phi
from . import figures
from .loading import RunView, band_images, reopen_images
from .markup import _anchor, _e, _figure, _img, _interval, _numbers, _table


def _class_names(result) -> list[str] | None:
    """ImageNet class names for a 1000-class model, when the package that has them is installed."""
    if result.model.get("num_classes") != 1000:
        return None
    try:
        from ..models.lite import imagenet_class_names

        return imagenet_class_names()
    except ImportError:
        return None


def _config_rows(run: RunView) -> list[tuple[str, str]]:
    r = run.result
    cfg, data, meta, model = r.config, r.data, r.meta, r.model
    dc = data.get("data_config") or {}
    timings = meta.get("timings_s") or {}
    rows = [
        ("run folder", _e(run.run_dir)),
        (
            "model",
            f"{_e(model.get('spec'))} <span class=muted>fingerprint {_e(model.get('fingerprint'))}, "
            f"{_e(model.get('num_classes'))} classes</span>",
        ),
        ("data", f"{_e(data.get('spec'))} <span class=muted>fingerprint {_e(data.get('fingerprint'))}</span>"),
        ("images", f"{_e(data.get('n_images'))} (labels {_e(cfg.get('labels'))})"),
        (
            "preprocessing",
            _e(
                f"resize {dc.get('resize_size')} ({dc.get('interpolation')}), crop "
                f"{'x'.join(str(v) for v in dc.get('input_size', []))}, mean {_numbers(dc.get('mean'))}, "
                f"std {_numbers(dc.get('std'))} (pixel units in [0, 1])"
            ),
        ),
        ("bands", _e(f"M = {cfg.get('bands')}, partition {cfg.get('partition')}, synthesis {cfg.get('synthesis')}")),
        ("fill", _e(f"{cfg.get('fill')}" + (", clipped to [0, 1]" if cfg.get("clip") else ", no clipping"))),
        ("preset", _e(cfg.get("preset") or "none")),
        (
            "bootstrap",
            _e(
                f"{cfg.get('n_bootstrap')} resamples, {100 * cfg.get('confidence', 0.95):.0f}% "
                f"percentile intervals, seed {cfg.get('seed')}"
            ),
        ),
        ("score weights", _e(f"β = {cfg.get('beta')}")),
        (
            "cost",
            _e(
                f"{meta.get('forward_passes')} forward passes on {meta.get('device')} ({meta.get('precision')}, "
                f"batch {meta.get('batch_size')}); wall {timings.get('wall', float('nan')):.1f} s"
            ),
        ),
        (
            "versions",
            _e(
                f"iaside {meta.get('iaside_version')}, torch {meta.get('torch_version')}, numpy "
                f"{meta.get('numpy_version')}, Python {meta.get('python')} ({meta.get('machine')})"
            ),
        ),
        ("created", _e(meta.get("created"))),
    ]
    return rows


def _key_numbers(r) -> str:
    ci = int(round(100 * r.config.get("confidence", 0.95)))
    boxes = [
        ("score", _interval(r.score), f"paper formula, {ci}% CI"),
        ("score_signed", _interval(r.score_signed, signed=True), "1 = band 0 only, 0 = uniform"),
        ("clean top-1", "-" if r.clean_accuracy is None else f"{r.clean_accuracy:.3f}", "accuracy on these images"),
        ("low-band share", f"{r.low_band_share():.3f}", f"SID on the lowest {max(1, r.n_bands // 4)} band(s)"),
    ]
    empty, full = figures.value_of(r, 0), figures.value_of(r, 2**r.n_bands - 1)
    if empty is not None and full is not None:
        boxes.append(("v(N) − v(∅)", f"{full - empty:+.3f} nats", f"= Σφ (gap {r.efficiency_gap:.1e})"))
    return (
        '<div class="key">'
        + "".join(
            f"<div><span>{_e(name)}</span><b>{_e(value)}</b><span>{_e(sub)}</span></div>" for name, value, sub in boxes
        )
        + "</div>"
    )


def _deviating_section(run: RunView, max_images: int, class_names, with_images: bool) -> str:
    r = run.result
    phi_img = r.per_image.get("phi_per_image")
    if phi_img is None or len(phi_img) == 0:
        return '<p class="note">per_image.npz is missing, so per-image SIDs cannot be shown.</p>'
    sid_img = sid_from_phi(np.asarray(phi_img, dtype=np.float64))
    sid_global = np.asarray(r.sid.value, dtype=np.float64)
    distance = 0.5 * np.abs(sid_img - sid_global).sum(axis=1)  # total variation, in [0, 1]
    order = np.argsort(-distance, kind="stable")[:max_images]
    names = [str(n) for n in r.per_image.get("names", [str(i) for i in range(len(phi_img))])]
    labels = r.per_image.get("label")
    top1 = r.per_image.get("clean_top1")
    pixels: dict[str, Any]
    pixels, note = ({}, None)
    if with_images:
        pixels, note = reopen_images(r, [names[i] for i in order], run.run_dir)
    else:
        note = "band images were switched off (--no-images)"
    parts = [
        f"<p>The {len(order)} of {len(names)} images whose own SID (from their own φ) is farthest from the global "
        "SID, by total-variation distance ½Σ|SID<sub>image</sub> − SID| (0 = same, 1 = disjoint). Band images: band 0 "
        "as it is; each of the others with its own contrast stretch (its luminance, 1st–99th percentile to "
        "black–white, gain shown), so their brightness is not comparable across bands. The band images sum to "
        "the image.</p>"
    ]
    if note:
        parts.append(f'<p class="note">{_e(note)}</p>')
    for i in order:
        name = names[i]
        label = int(labels[i]) if labels is not None else None

        def cls(k):
            if k is None:
                return "?"
            return f"{k} ({class_names[k]})" if class_names is not None and 0 <= k < len(class_names) else str(k)

        title = (
            f"{name}: label {cls(label)}, clean top-1 {cls(int(top1[i]) if top1 is not None else None)}, "
            f"distance {distance[i]:.3f}"
        )
        px = pixels.get(name)
        if px is not None:
            bands = band_images(px, r.n_bands, r.config.get("partition", "linf"))
            png = figures.deviating_image(px.numpy(), bands, sid_img[i], sid_global)
        else:
            png = figures.deviating_image(None, None, sid_img[i], sid_global)
        parts.append(
            f"<figure><figcaption><b>{_e(name)}</b>{_e(title.removeprefix(name))}</figcaption>"
            f"{_img(png, f'band images and SID of {name}')}</figure>"
        )
    return "".join(parts)


def interpretation_html(r) -> str:
    """The run's interpretation sentence, or a plain statement that there is nothing to interpret."""
    reading = r.interpretation
    if reading["informative"]:
        return f"<p>{_e(reading['sentence'])}</p>"
    return (
        f'<p class="uninformative"><b>Not informative.</b> {_e(reading["why"])}. Nothing in this run is '
        "evidence about the model: the SID, φ and scores below are shown for completeness only.</p>"
    )


def band_table_html(r) -> str:
    """Per band: SID and φ with intervals and the signed share φ/Σφ; the band the min-shift sets
    to 0 marked, with a one-line note."""
    ci = int(round(100 * r.config.get("confidence", 0.95)))
    shifted = r.min_shift_band()
    rows = [
        (
            f"{i} *" if i == shifted else str(i),
            f"{r.sid.value[i]:.4f}",
            f"[{r.sid.low[i]:.4f}, {r.sid.high[i]:.4f}]",
            f"{r.shares.value[i]:+.3f}",
            f"{r.phi.value[i]:+.4f}",
            f"[{r.phi.low[i]:+.4f}, {r.phi.high[i]:+.4f}]",
        )
        for i in range(r.n_bands)
    ]
    return (
        _table(["band", "SID", f"{ci}% CI", "φ/Σφ", "φ (nats)", f"{ci}% CI"], rows, numeric=(1, 2, 3, 4, 5))
        + f'<p class="muted">* band {shifted} has the smallest φ: the paper\'s SID shifts every φ by it '
        "(ψ = φ − min φ), so its SID is 0 by construction; φ/Σφ is the signed share, which keeps it.</p>"
    )


def _run_section(k: int, run: RunView, max_images: int, with_images: bool) -> str:
    r = run.result
    class_names = _class_names(r)
    ci = int(round(100 * r.config.get("confidence", 0.95)))
    parts = [f'<h2 id="{_anchor(k)}">{k + 1}. {_e(run.name)}</h2>', interpretation_html(r), _key_numbers(r)]
    parts += [f'<p class="note">{_e(n)}</p>' for n in run.notes]
    parts.append(
        '<div class="cols"><div><h3>Configuration</h3>'
        + _table(["", ""], [(f"<b>{a}</b>", b) for a, b in _config_rows(run)])
        + "</div>"
        + "<div><h3>Per band</h3>"
        + band_table_html(r)
        + "</div></div>"
    )
    parts.append("<h3>Spectral importance</h3>")
    parts.append(
        _figure(
            figures.sid_phi(r),
            f"SID and phi of {run.name}",
            "Left: SID = ψ/Σψ with ψ = φ − min φ (the least important band gets 0, marked); the dashed "
            "line is a "
            "uniform SID. Right: the raw Shapley values φ in nats (Σφ = v(N) − v(∅)). Whiskers: "
            f"{ci}% bootstrap percentile intervals over images.",
        )
    )
    parts.append('<div class="cols">')
    parts.append(
        _figure(
            figures.coalition_values(r),
            f"v(S) against coalition size for {run.name}",
            "Every coalition evaluated on all images (all 2<sup>M</sup> for the exact estimator; only the "
            "empty and full ones when each image draws its own permutations): v(S), the mean "
            "log-probability of the label when only the bands in S are kept (the others replaced by the "
            "fill), against |S|. Small horizontal jitter separates the points.",
        )
    )
    heat, left_out = figures.per_class_heatmap(r, class_names)
    parts.append(
        _figure(
            heat,
            f"per-class SIDs of {run.name}",
            "SID of each class from the mean per-image φ of its images"
            + (f"; {left_out} smaller classes not shown" if left_out else "")
            + ".",
        )
    )
    parts.append("</div>")
    from .views import views_section

    parts.append(views_section(r, run.name, run.run_dir))
    parts.append("<h3>Images that deviate most from the global SID</h3>")
    parts.append(_deviating_section(run, max_images, class_names, with_images))
    return "".join(parts)
