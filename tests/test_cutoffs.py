"""iaside cutoffs: at c = k/M its ideal filters are the exact run's band-limited coalitions."""

from __future__ import annotations

import numpy as np
import pytest
from test_interactions import _images, _Spectral

import iaside
from iaside.cutoffs import cutoff_filters, parse_cutoffs, run_cutoffs
from iaside.errors import IasideError


def test_at_band_edges_the_curves_equal_the_runs_band_limited_views(tmp_path):
    x, y = _images(n=12, seed=5)
    run = iaside.explain(_Spectral(), (x, y), bands=4, fill="zero", n_bootstrap=20, show_progress=False)
    said = []
    summary = run_cutoffs(
        _Spectral(),
        (x, y),
        "0.25,0.5,0.75",
        n_bootstrap=20,
        batch_size=4,
        out=tmp_path / "c",
        show_progress=False,
        say=said.append,
    )
    assert "12 images × 3 cut-offs × 2 (low-pass, high-pass) = 72 forward passes" in said[0]
    assert summary["forward_passes_this_session"] == 72 + 12
    curves = run.band_limited
    for k in (1, 2, 3):  # c = k/4: low-pass {0…k−1}, high-pass {k…3}
        low, high = summary["lowpass"], summary["highpass"]
        assert low["accuracy"]["value"][k - 1] == pytest.approx(curves["lowpass"]["accuracy"].value[k - 1])
        assert low["v_nats"]["value"][k - 1] == pytest.approx(curves["lowpass"]["v_nats"].value[k - 1], abs=1e-4)
        assert high["accuracy"]["value"][k - 1] == pytest.approx(curves["highpass"]["accuracy"].value[k])
        assert high["v_nats"]["value"][k - 1] == pytest.approx(curves["highpass"]["v_nats"].value[k], abs=1e-4)
    assert (
        len({round(v, 4) for v in summary["highpass"]["v_nats"]["value"]}) == 3
    )  # the columns differ: the check can fail
    again = run_cutoffs(
        _Spectral(), (x, y), "0.25,0.5,0.75", n_bootstrap=20, out=tmp_path / "c", show_progress=False, say=said.append
    )
    assert (
        again["forward_passes_this_session"] == 0 and again["lowpass"] == summary["lowpass"]
    )  # resumed, nothing redone
    from iaside.report.views import cutoffs_section

    html = cutoffs_section(tmp_path / "c")
    assert "Cut-off curves" in html and "<img" in html and f"top-1 {summary['clean_accuracy']:.3f}" in html


def test_filters_split_the_spectrum():
    f = cutoff_filters(16, 12, np.array([0.1, 0.5, 1.0]))
    np.testing.assert_array_equal((f[:3] + f[3:]).numpy(), 1.0)
    assert float(f[2].sum()) < 16 * 12 and float(f[0, 0, 0]) == 1.0  # r = 1 (Nyquist) is high-pass; DC low-pass


@pytest.mark.parametrize("text", ["0,0.5", "1.5", "a,b", ""])
def test_bad_cutoffs(text):
    with pytest.raises(IasideError, match="--cutoffs"):
        parse_cutoffs(text)
