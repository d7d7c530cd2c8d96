"""CE and mCE of tables read from JSON, where an unmeasured error is null (docs/proofs.md §6
lists the mutants these kill)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from iaside.robustness.metrics import corruption_errors, mean_ce


def test_a_null_error_makes_only_that_corruption_s_ce_undefined():
    """None (null in robustness.json) in the model's table or the reference's: that corruption's
    CE = Σ_s E / Σ_s E_ref is undefined (NaN), quietly, and mCE is the mean over the other
    corruptions. Mutants: the float conversion of either table dropped (None then breaks the sums)."""
    errors = [[0.1, None, 0.3], [0.2, 0.2, 0.4], [0.3, 0.3, 0.3], [0.1, 0.2, 0.3]]
    reference = [[0.2, 0.2, 0.2], [0.1, None, 0.3], [0.2, 0.2, 0.2], [0.4, 0.4, 0.4]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ce = corruption_errors(errors, reference)
    assert ce.dtype == np.float64 and ce.shape == (4,) and np.isnan(ce[:2]).all()
    np.testing.assert_allclose(ce[2:], [0.9 / 0.6, 0.6 / 1.2], rtol=1e-12)
    assert mean_ce(ce) == pytest.approx((1.5 + 0.5) / 2, rel=1e-12)
