"""The number functions of the Python API's inputs (``iaside/data/arrays.py``): every layout,
dtype, range and label form against numpy computations written here, and every refusal's
exact one-line message (what the user reads). Tiny arrays only: this file is the fast test
selection of `python benchmarks/mutation.py arrays` (docs/proofs.md §6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iaside.data.arrays import (
    RANGE_SLACK,
    as_tensor,
    check_range,
    check_scale,
    class_indices,
    dtype_name,
    is_uint8,
    to_nchw,
)
from iaside.errors import IasideError


def _distinct(*shape, dtype=np.float32) -> np.ndarray:
    """An array whose every element is different (k / total), so any wrong axis order shows."""
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float64) / n).reshape(shape).astype(dtype)


def _refused(call, *args) -> str:
    with pytest.raises(IasideError) as err:
        call(*args)
    return str(err.value)


NORMALISED = (
    "they look normalised: pass the pixels before normalisation (x * std + mean) and give the "
    "model's mean/std as data_config=DataConfig(mean=..., std=...)"
)
BYTES = "they look like 0-255 values: pass x / 255 (or the uint8 tensor itself)"


# ---- as_tensor -------------------------------------------------------------------------------


def test_as_tensor_keeps_uint8_and_float_pixels_as_they_are():
    # a non-contiguous numpy view (transposed) comes back with the same values, contiguous
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4).transpose(2, 0, 1)
    x = as_tensor(a, "data")
    assert x.dtype == torch.uint8 and x.is_contiguous() and tuple(x.shape) == (4, 2, 3)
    np.testing.assert_array_equal(x.numpy(), a)
    for dtype in (np.float16, np.float32, np.float64):
        f = _distinct(2, 3, dtype=dtype)
        y = as_tensor(f, "data")
        assert y.dtype == torch.from_numpy(f).dtype
        np.testing.assert_array_equal(y.numpy(), f)
    # a tensor that needs grad comes back detached, with the same values
    t = torch.tensor(_distinct(3, 2), requires_grad=True)
    d = as_tensor(t, "data")
    assert not d.requires_grad and d.dtype == torch.float32
    np.testing.assert_array_equal(d.numpy(), _distinct(3, 2))
    u = torch.arange(6, dtype=torch.uint8)
    assert torch.equal(as_tensor(u, "data"), u)


@pytest.mark.parametrize(
    "pixels, name",
    [
        (np.zeros((2, 2), dtype=np.uint16), "uint16"),
        (torch.zeros(2, 2, dtype=torch.int16), "int16"),
        (np.zeros((2, 2), dtype=bool), "bool"),
        (torch.zeros(2, 2, dtype=torch.int64), "int64"),
    ],
)
def test_as_tensor_refuses_other_dtypes_naming_them(pixels, name):
    assert _refused(as_tensor, pixels, "data (x)") == (
        f"data (x): pixels must be uint8 (0-255) or float in [0, 1], not {name}; "
        "convert them (e.g. x.astype('float32') / 65535 for 16-bit images)"
    )


# ---- to_nchw ---------------------------------------------------------------------------------

# (input shape, layout said, numpy function giving the expected (N, C, H, W) array)
LAYOUTS = [
    ((4, 5), "one image H, W", lambda a: a[np.newaxis, np.newaxis]),
    ((1, 4, 5), "one image C, H, W", lambda a: a[np.newaxis]),
    ((3, 4, 5), "one image C, H, W", lambda a: a[np.newaxis]),
    ((3, 4, 3), "one image C, H, W", lambda a: a[np.newaxis]),  # C first wins a tie
    ((5, 4, 3), "one image H, W, C", lambda a: np.moveaxis(a, 2, 0)[np.newaxis]),
    ((5, 4, 1), "one image H, W, C", lambda a: np.moveaxis(a, 2, 0)[np.newaxis]),
    ((2, 4, 5), "N, H, W (grayscale)", lambda a: a[:, np.newaxis]),
    ((4, 5, 2), "N, H, W (grayscale)", lambda a: a[:, np.newaxis]),
    ((2, 5, 4, 3), "N, H, W, C", lambda a: np.moveaxis(a, 3, 1)),
    ((2, 5, 4, 1), "N, H, W, C", lambda a: np.moveaxis(a, 3, 1)),
    ((2, 3, 4, 5), "N, C, H, W", lambda a: a),
    ((2, 1, 4, 3), "N, C, H, W", lambda a: a),  # channels at 1 win over a last axis of 3
    ((2, 3, 4, 1), "N, C, H, W", lambda a: a),
    ((2, 5, 4, 6), "N, C, H, W", lambda a: a),  # neither: taken as it is
    ((0, 3, 2, 2), "N, C, H, W", lambda a: a),
]


@pytest.mark.parametrize("shape, layout, expected", LAYOUTS, ids=[str(s) for s, _, _ in LAYOUTS])
def test_to_nchw_reads_every_layout(shape, layout, expected):
    a = _distinct(*shape)
    x, said = to_nchw(torch.from_numpy(a), "data")
    assert said == layout
    want = expected(a)
    assert x.dim() == 4 and tuple(x.shape) == want.shape
    np.testing.assert_array_equal(x.numpy(), want)


@pytest.mark.parametrize("shape", [(7,), (1, 2, 3, 4, 5)])
def test_to_nchw_refuses_other_dimensions(shape):
    assert _refused(to_nchw, torch.zeros(shape), "data (t)") == (
        "data (t): expected images (N, C, H, W), (N, H, W, C), (N, H, W) or one image "
        f"(C, H, W), (H, W, C), (H, W); got {len(shape)} dimensions"
    )


# ---- check_scale and check_range -------------------------------------------------------------


def test_check_scale_says_the_uint8_rescale_and_checks_floats():
    assert check_scale(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8), "data") == ["rescaled to [0, 1] (/ 255)"]
    assert check_scale(torch.tensor([[0.0, 1.0], [0.25, 0.5]]), "data") == []
    assert check_scale(torch.zeros(0, 3, 2, 2), "data") == []  # nothing to check
    # the range is the whole tensor's: one bad value anywhere, the true min and max in the message
    x = torch.zeros(2, 1, 2, 3)
    x[1, 0, 1, 2], x[0, 0, 1, 0] = 3.5, -0.25
    assert _refused(check_scale, x, "data (tensor (2, 1, 2, 3) float32)") == (
        f"data (tensor (2, 1, 2, 3) float32): float pixel values span [-0.25, 3.5], outside [0, 1]; {NORMALISED}"
    )
    x = torch.full((2, 1, 2, 3), 0.5, dtype=torch.float64)
    x[1, 0, 0, 1] = 1.5
    assert "span [0.5, 1.5]" in _refused(check_scale, x, "data")


def test_check_range_accepts_unit_pixels_up_to_the_slack():
    assert RANGE_SLACK == 1e-6
    for lo, hi in [(0.0, 1.0), (-1e-6, 1 + 1e-6), (0.5, 0.5), (-5e-7, 1.0)]:
        assert check_range(lo, hi, "data") is None


@pytest.mark.parametrize(
    "lo, hi, shown, hint",
    [
        (-2.1e-6, 1.0, "[-2.1e-06, 1]", NORMALISED),
        (-2.117904, 2.64, "[-2.118, 2.64]", NORMALISED),
        (0.0, 1 + 2e-6, "[0, 1]", BYTES),  # .4g rounds 1.000002 to 1
        (0.0, 255.0, "[0, 255]", BYTES),
        (0.5, 200.0, "[0.5, 200]", BYTES),
        (0.0, 255.5, "[0, 255.5]", "scale them to [0, 1]"),
        (0.0, 65535.0, "[0, 6.554e+04]", "scale them to [0, 1]"),
        (-1.0, 1000.0, "[-1, 1000]", NORMALISED),
    ],
)
def test_check_range_refuses_other_spans_with_the_fitting_hint(lo, hi, shown, hint):
    assert _refused(check_range, lo, hi, "data (tensor)") == (
        f"data (tensor): float pixel values span {shown}, outside [0, 1]; {hint}"
    )


@pytest.mark.parametrize(
    "lo, hi", [(float("nan"), 0.5), (0.5, float("nan")), (0.0, float("inf")), (float("-inf"), 1.0)]
)
def test_check_range_refuses_nan_and_infinite_pixels(lo, hi):
    assert _refused(check_range, lo, hi, "data[3]") == (
        "data[3] holds NaN or infinite pixel values; remove or repair those images"
    )


# ---- class_indices ---------------------------------------------------------------------------


def test_class_indices_from_every_integer_form():
    want = np.array([3, 0, 7, 1], dtype=np.int64)
    for labels in (
        [3, 0, 7, 1],
        (3, 0, 7, 1),
        want.astype(np.uint8),
        want.astype(np.int32),
        torch.tensor([3, 0, 7, 1]),
        torch.tensor([3, 0, 7, 1], dtype=torch.int16),
    ):
        y = class_indices(labels, 4)
        assert isinstance(y, torch.Tensor) and y.dtype == torch.int64
        np.testing.assert_array_equal(y.numpy(), want)
    empty = class_indices(np.zeros(0, dtype=np.int64), 0)
    assert empty.dtype == torch.int64 and tuple(empty.shape) == (0,)
    assert class_indices([0, 0], 2).tolist() == [0, 0]


@pytest.mark.parametrize(
    "labels, n, message",
    [
        (
            np.eye(3, dtype=np.int64),
            3,
            "data labels have shape (3, 3) (one-hot or scores?); pass class indices, e.g. labels.argmax(1)",
        ),
        (
            torch.rand(4, 2),
            4,
            "data labels have shape (4, 2) (one-hot or scores?); pass class indices, e.g. labels.argmax(1)",
        ),
        ([[0], [1], [2]], 3, "data labels: expected 3 class indices (shape (3,)), got shape (3, 1)"),
        (np.zeros((2, 3), dtype=int), 3, "data labels: expected 3 class indices (shape (3,)), got shape (2, 3)"),
        ([0, 1], 3, "data labels: expected 3 class indices (shape (3,)), got shape (2,)"),
        (5, 1, "data labels: expected 1 class indices (shape (1,)), got shape ()"),
        ([0.0, 1.0], 2, "data labels are float64; pass integer class indices (0..K-1)"),
        (torch.tensor([0.0, 1.0]), 2, "data labels are float32; pass integer class indices (0..K-1)"),
        (["cat", "dog"], 2, "data labels are <U3; pass integer class indices (0..K-1)"),
        ([2, 5, -2, -7], 4, "data labels: label -2 at 2 is negative; labels are class indices 0..K-1"),
        ([-1], 1, "data labels: label -1 at 0 is negative; labels are class indices 0..K-1"),
        # the first negative one is named, not the first label at 0
        ([0, 4, -3, 0], 4, "data labels: label -3 at 2 is negative; labels are class indices 0..K-1"),
        # scores straight from a model (they need grad): named as scores, not a torch error
        (
            torch.rand(4, 2, requires_grad=True),
            4,
            "data labels have shape (4, 2) (one-hot or scores?); pass class indices, e.g. labels.argmax(1)",
        ),
    ],
)
def test_class_indices_refusals_name_the_labels(labels, n, message):
    assert _refused(class_indices, labels, n) == message


def test_class_indices_names_the_argument_it_is_given():
    assert _refused(class_indices, [1], 2, "data batch 3 labels") == (
        "data batch 3 labels: expected 2 class indices (shape (2,)), got shape (1,)"
    )


# ---- is_uint8 and dtype_name -----------------------------------------------------------------


def test_is_uint8_and_dtype_name():
    assert is_uint8(torch.zeros(2, dtype=torch.uint8)) and is_uint8(np.zeros(2, dtype=np.uint8))
    for other in (torch.zeros(2), np.zeros(2), np.zeros(2, dtype=np.int8), torch.zeros(2, dtype=torch.int8)):
        assert not is_uint8(other)
    for not_an_array in ([0, 255], b"\x00", None, 3):
        assert not is_uint8(not_an_array)
    assert dtype_name(torch.zeros(1, dtype=torch.float16)) == "float16"
    assert dtype_name(torch.zeros(1, dtype=torch.uint8)) == "uint8"
    assert dtype_name(np.zeros(1, dtype=np.float64)) == "float64"
