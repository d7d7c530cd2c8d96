"""Decoding and preprocessing (``iaside/data/transforms.py``) against computations written here:
the resized size from the shorter-side rule by hand, the crop offsets by hand, PIL's own resize
of the whole image then a numpy slice, 16-bit and float pixels scaled with numpy, and every
refusal's exact message. Tiny images only: this file is the fast test selection of
`python benchmarks/mutation.py transforms` (docs/proofs.md §6)."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from iaside.config import DataConfig
from iaside.data import transforms
from iaside.data.transforms import (
    MAX_PIXELS,
    THIN_FACTOR,
    check_resized_size,
    load_image,
    preprocess,
    resized_size,
    to_mode,
)
from iaside.errors import IasideError

PIL_FILTER = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _picture(w: int, h: int) -> np.ndarray:
    """(h, w, 3) uint8, smooth but different along each axis and in each channel."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(7 * xx + 11 * yy) % 256, (250 - 3 * xx + 2 * yy) % 256, (13 * yy + xx // 2) % 256], -1).astype(
        np.uint8
    )


def _expected(img: Image.Image, size: tuple[int, int], top: int, left: int, crop_hw, interp: str) -> np.ndarray:
    """PIL resize of the whole image to ``size``, then the (H, W) crop at (top, left), as (C, H, W) / 255."""
    resized = np.asarray(img.resize(size, PIL_FILTER[interp]) if size != img.size else img, dtype=np.float64)
    crop = resized[top : top + crop_hw[0], left : left + crop_hw[1]]
    return (crop[None] if crop.ndim == 2 else crop.transpose(2, 0, 1)) / 255


def _refused(call, *args, **kw) -> str:
    with pytest.raises(IasideError) as err:
        call(*args, **kw)
    return str(err.value)


def _png_header(width: int, height: int) -> bytes:
    """PNG bytes whose header claims width × height grey pixels and whose data is missing."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(10))) + chunk(b"IEND", b"")


# ---- resized_size and check_resized_size -----------------------------------------------------


@pytest.mark.parametrize(
    "width, height, resize, crop_hw, want",
    [
        # shorter side to `resize`, the longer one int(resize · long / short) (truncated, as torchvision)
        (30, 20, 16, (8, 8), (24, 16)),
        (20, 30, 16, (8, 8), (16, 24)),
        (7, 3, 5, (5, 5), (11, 5)),  # 5 · 7 / 3 = 11.67 → 11, not 12
        (3, 7, 5, (5, 5), (5, 11)),
        (9, 9, 4, (4, 4), (4, 4)),
        # too small for the crop: scaled by max(crop_w / w, crop_h / h), rounded, at least the crop
        (40, 10, 8, (12, 20), (48, 12)),  # height short: scale 12 / 10
        (10, 40, 8, (20, 12), (12, 48)),  # width short: scale 12 / 10
        (7, 3, 5, (5, 12), (12, 5)),  # width 11 < 12: scale 12 / 7, height round(3 · 12 / 7) = 5
        (7, 3, 5, (5, 11), (11, 5)),  # width 11 = 11 fits: not enlarged (enlarging would give 12)
        (3, 7, 5, (11, 5), (5, 11)),
        (100, 100, 10, (20, 30), (30, 30)),
    ],
)
def test_resized_size_is_the_shorter_side_rule_enlarged_to_cover_the_crop(width, height, resize, crop_hw, want):
    assert resized_size(width, height, resize, crop_hw) == want


def test_check_resized_size_refuses_over_the_pixel_limit_naming_the_image():
    assert MAX_PIXELS == 178_956_970  # PIL's own decompression-bomb limit, 2 × 89 478 485
    tiny = DataConfig(input_size=(1, 1), resize_size=1, mean=(0.5,), std=(0.5,), channels=1)
    # a strip 1 pixel high keeps its width: exactly the limit is accepted, one more is not
    assert check_resized_size(MAX_PIXELS, 1, tiny) == (MAX_PIXELS, 1)
    assert _refused(check_resized_size, MAX_PIXELS + 1, 1, tiny, "data/3/strip.png") == (
        f"data/3/strip.png is {MAX_PIXELS + 1}x1 pixels; resized to {MAX_PIXELS + 1}x1 it would exceed "
        f"{MAX_PIXELS} pixels (an extreme aspect ratio); crop it first or remove it from the data"
    )
    # a thin strip enlarged until its short side is resize_size: 20000 × 2 → 2 000 000 × 200
    cfg = DataConfig(input_size=(8, 8), resize_size=200)
    assert _refused(check_resized_size, 20000, 2, cfg) == (
        "the image is 20000x2 pixels; resized to 2000000x200 it would exceed "
        f"{MAX_PIXELS} pixels (an extreme aspect ratio); crop it first or remove it from the data"
    )
    assert check_resized_size(30, 20, cfg) == (300, 200)
    with pytest.raises(IasideError, match="^the image is 20000x2 pixels; resized to 2000000x200"):
        preprocess(Image.new("L", (20000, 2)), cfg)
    with pytest.raises(IasideError, match=r"^data\[2\] is 20000x2 pixels; resized to 2000000x200"):
        preprocess(Image.new("L", (20000, 2)), cfg, "data[2]")


# ---- preprocess ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "w, h, cfg, size, top, left",
    [
        # 13 × 10 → 9 · 13 / 10 = 11.7 → (11, 9); crop 5 × 7: top (9 − 5) / 2 = 2, left (11 − 7) / 2 = 2
        (13, 10, DataConfig(input_size=(5, 7), resize_size=9, interpolation="bicubic"), (11, 9), 2, 2),
        # 10 × 17 → (8, 13); crop 6 × 5: top round(3.5) = 4, left round(1.5) = 2
        (10, 17, DataConfig(input_size=(6, 5), resize_size=8, interpolation="nearest"), (8, 13), 4, 2),
        # already the resized size: only the crop, top round(2.5) = 2 (half to even), left 0
        (6, 9, DataConfig(input_size=(4, 6), resize_size=6, interpolation="lanczos"), (6, 9), 2, 0),
        (12, 12, DataConfig(input_size=(3, 4), resize_size=7, interpolation="bilinear"), (7, 7), 2, 2),
    ],
)
def test_preprocess_resizes_the_shorter_side_then_centre_crops(w, h, cfg, size, top, left):
    img = Image.fromarray(_picture(w, h))
    assert resized_size(w, h, cfg.resize_size, cfg.input_size) == size
    pixels = preprocess(img, cfg)
    assert pixels.dtype == torch.float32 and pixels.is_contiguous()
    assert tuple(pixels.shape) == (3, *cfg.input_size)
    np.testing.assert_allclose(
        pixels.numpy(), _expected(img, size, top, left, cfg.input_size, cfg.interpolation), rtol=0, atol=1e-6
    )


def test_preprocess_brings_the_image_to_the_config_s_channels():
    rgb = _picture(9, 7)
    grey_cfg = DataConfig(
        input_size=(4, 5), resize_size=7, interpolation="nearest", mean=(0.3,), std=(0.2,), channels=1
    )
    pixels = preprocess(Image.fromarray(rgb), grey_cfg)
    assert tuple(pixels.shape) == (1, 4, 5) and pixels.is_contiguous()
    # PIL's L = (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16 (ITU-R 601 in 16-bit fixed point); no resize,
    # the crop at top round(3 / 2) = 2, left 2
    r, g, b = (rgb[..., k].astype(np.int64) for k in range(3))
    luma = (19595 * r + 38470 * g + 7471 * b + 32768) >> 16
    np.testing.assert_allclose(pixels[0].numpy(), luma[2:6, 2:7] / 255, rtol=0, atol=1e-6)
    # a grey image for an RGB model: the value repeated in every channel; RGBA: alpha dropped
    grey = Image.fromarray(rgb[..., 0])
    cfg = DataConfig(input_size=(7, 9), resize_size=7)
    out = preprocess(grey, cfg)
    for c in range(3):
        np.testing.assert_allclose(out[c].numpy(), rgb[..., 0] / 255, rtol=0, atol=1e-6)
    rgba = np.concatenate([rgb, np.full((7, 9, 1), 9, np.uint8)], -1)
    np.testing.assert_allclose(
        preprocess(Image.fromarray(rgba), cfg).numpy(), rgb.transpose(2, 0, 1) / 255, rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("interp", ["bilinear", "nearest", "lanczos"])
def test_a_thin_strip_is_resized_over_the_crop_only_with_the_same_pixels(interp):
    # 100 × 9, short side 6: (66, 6) holds 396 > 16 · 4 · 5 pixels, so only the crop's region is resized
    w, h, cfg = 100, 9, DataConfig(input_size=(4, 5), resize_size=6, interpolation=interp)
    size = (66, 6)
    assert resized_size(w, h, 6, (4, 5)) == size and size[0] * size[1] > THIN_FACTOR * 4 * 5
    img = Image.fromarray(_picture(w, h))
    pixels = preprocess(img, cfg)
    assert tuple(pixels.shape) == (3, 4, 5) and pixels.is_contiguous()
    # the whole resize then the crop at top round(2 / 2) = 1, left round(61 / 2) = 30: up to rounding;
    # the crop one pixel off in either direction differs by at least 4 levels
    want = _expected(img, size, 1, 30, (4, 5), interp)
    np.testing.assert_allclose(pixels.numpy(), want, rtol=0, atol=1.01 / 255)
    for dt, dl in [(1, 0), (-1, 0), (0, 1), (0, -1)]:
        assert np.abs(pixels.numpy() - _expected(img, size, 1 + dt, 30 + dl, (4, 5), interp)).max() > 3.5 / 255


def test_the_thin_route_starts_above_sixteen_crops():
    assert THIN_FACTOR == 16
    # 16 × 5 → (12, 4) with resize 4 (4 · 16 / 5 = 12.8 → 12) and crop 1 × 3: 48 pixels, exactly 16
    # crops, so the whole image is resized, then cropped at top round(3 / 2) = 2, left round(9 / 2) = 4.
    # With nearest the crop-only route samples other columns here (162, not 159, in the first pixel)
    a = (3 * np.arange(80).reshape(5, 16)).astype(np.uint8)
    img = Image.fromarray(a)
    cfg = DataConfig(input_size=(1, 3), resize_size=4, interpolation="nearest", mean=(0.5,), std=(0.5,), channels=1)
    assert resized_size(16, 5, 4, (1, 3)) == (12, 4)
    want = _expected(img, (12, 4), 2, 4, (1, 3), "nearest")
    box = (4 * 16 / 12, 2 * 5 / 4, 7 * 16 / 12, 3 * 5 / 4)
    assert not np.array_equal(np.asarray(img.resize((3, 1), Image.Resampling.NEAREST, box=box)) / 255, want[0])
    np.testing.assert_allclose(preprocess(img, cfg).numpy(), want, rtol=0, atol=1e-6)


def test_the_thin_route_is_chosen_by_the_resized_area():
    # 12 × 4 → (9, 3) with resize 3 and crop 1 × 1: 27 pixels > 16 crops (though 9 / 3 and 3 · 3 are not),
    # so only the crop's box is resized: left round(8 / 2) = 4, top round(2 / 2) = 1, in source pixels
    # ×12/9 and ×4/3. With nearest that samples another pixel than the whole resize does (90, not 87)
    a = (3 * np.arange(48).reshape(4, 12)).astype(np.uint8)
    img = Image.fromarray(a)
    cfg = DataConfig(input_size=(1, 1), resize_size=3, interpolation="nearest", mean=(0.5,), std=(0.5,), channels=1)
    assert resized_size(12, 4, 3, (1, 1)) == (9, 3)
    box = (4 * 12 / 9, 1 * 4 / 3, 5 * 12 / 9, 2 * 4 / 3)
    want = np.asarray(img.resize((1, 1), Image.Resampling.NEAREST, box=box), dtype=np.float64)[None] / 255
    assert not np.array_equal(want, _expected(img, (9, 3), 1, 4, (1, 1), "nearest"))
    np.testing.assert_allclose(preprocess(img, cfg).numpy(), want, rtol=0, atol=1e-6)


# ---- to_mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [0, 2, 4])
def test_to_mode_refuses_other_channel_counts(channels):
    assert _refused(to_mode, Image.new("RGB", (2, 2)), channels) == (
        f"channels={channels}: only 1 (grayscale) or 3 (RGB) are supported"
    )


def test_sixteen_bit_and_float_images_are_scaled_to_eight_bits():
    # v / 65535 · 255 = v / 257: 64379 / 257 = 250.502 → 251 (over 65536 it would be 250.497 → 250)
    values16 = np.array([[0, 257, 65535, 64379], [32767, 1000, 40000, 128]], dtype=np.uint16)
    want = np.rint(values16 / 257)  # 0, 1, 255, 251, 127, 4, 156, 0 (not clipped at 255 like PIL's own)
    assert want[0, 3] == 251
    for mode, img in [
        ("I;16", Image.fromarray(values16)),
        ("I", Image.fromarray(values16.astype(np.int32))),
        ("I;16B", Image.fromarray(values16).convert("I").convert("I;16B")),
    ]:
        assert img.mode == mode
        out = to_mode(img, 1)
        assert out.mode == "L"
        np.testing.assert_array_equal(np.asarray(out), want)
        rgb = to_mode(img, 3)
        assert rgb.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(rgb), np.repeat(want[..., None], 3, -1))
    # 32-bit integers above 65535 or below 0 clip to white and black
    wide = Image.fromarray(np.array([[-5, 70000]], dtype=np.int32))
    np.testing.assert_array_equal(np.asarray(to_mode(wide, 1)), [[0, 255]])
    # float images are [0, 1]: 0.25 → 63.75 → 64, 0.6 → 153, outside clipped
    floats = Image.fromarray(np.array([[0.25, 0.6, -0.5, 1.5, 1.0]], dtype=np.float32))
    assert floats.mode == "F"
    np.testing.assert_array_equal(np.asarray(to_mode(floats, 1)), [[64, 153, 0, 255, 255]])
    # scaled in float64: float32(0.5 / 255) is a little above 0.5 / 255, so it is 1, not 0 (as in float32)
    half = np.float32(0.5 / 255)
    assert np.float64(half) * 255 > 0.5
    np.testing.assert_array_equal(np.asarray(to_mode(Image.fromarray(np.array([[half]], np.float32)), 1)), [[1]])


def test_palette_alpha_and_grey_images_become_rgb_or_l():
    pal = Image.new("P", (3, 2))
    pal.putpalette([0, 0, 0, 200, 100, 50, 10, 20, 30])
    pal.putdata([0, 1, 2, 1, 0, 2])
    colours = np.array([[0, 0, 0], [200, 100, 50], [10, 20, 30]], dtype=np.uint8)[[[0, 1, 2], [1, 0, 2]]]
    for img in (pal, pal.convert("PA"), Image.fromarray(np.concatenate([colours, colours[..., :1]], -1), "RGBA")):
        out = to_mode(img, 3)
        assert out.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(out), colours)
    # transparency given per palette entry: converted through RGBA, without PIL's warning for P → RGB
    clear = pal.copy()
    clear.info["transparency"] = bytes([0, 128, 255])
    r, g, b = (colours[..., k].astype(np.int64) for k in range(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(np.asarray(to_mode(clear, 3)), colours)
        np.testing.assert_array_equal(np.asarray(to_mode(clear, 1)), (19595 * r + 38470 * g + 7471 * b + 32768) >> 16)
    grey = Image.fromarray(np.array([[3, 100], [250, 7]], dtype=np.uint8))
    assert to_mode(grey, 1) is grey  # already the target mode: the image itself
    np.testing.assert_array_equal(np.asarray(to_mode(grey, 3)), np.repeat(np.asarray(grey)[..., None], 3, -1))
    rgb = Image.fromarray(colours)
    assert to_mode(rgb, 3) is rgb


# ---- load_image ------------------------------------------------------------------------------


def test_load_image_decodes_upright_rgb_or_l(tmp_path):
    a = _picture(5, 3)
    Image.fromarray(a).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.mode == "RGB" and img.size == (5, 3)
    np.testing.assert_array_equal(np.asarray(img), a)
    grey = load_image(str(tmp_path / "a.png"), channels=1)
    assert grey.mode == "L"
    r, g, b = (a[..., k].astype(np.int64) for k in range(3))
    np.testing.assert_array_equal(np.asarray(grey), (19595 * r + 38470 * g + 7471 * b + 32768) >> 16)
    # EXIF orientation 6 (display rotated 90° clockwise): the pixels come back rotated, lossless PNG
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(tmp_path / "r.png", exif=exif)
    upright = load_image(tmp_path / "r.png")
    assert upright.size == (3, 5)
    np.testing.assert_array_equal(np.asarray(upright), np.rot90(a, k=-1))
    # a 16-bit PNG through the file: scaled by 1 / 65535, not clipped
    Image.fromarray(np.array([[65535, 257 * 40]], dtype=np.uint16)).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "deep.png")), [[[255] * 3, [40] * 3]])


def test_check_size_sees_the_header_size_before_decoding(tmp_path):
    seen = []

    def check(width, height):
        seen.append((width, height))
        raise IasideError("refused by the caller")

    (tmp_path / "h.png").write_bytes(_png_header(7, 3))
    assert _refused(load_image, tmp_path / "h.png", 3, check) == "refused by the caller"
    assert seen == [(7, 3)]
    # exactly the pixel limit passes the header check (without decoding: the caller refuses it),
    # with PIL's DecompressionBombWarning silenced inside and the warning filters left as they were
    (tmp_path / "max.png").write_bytes(_png_header(MAX_PIXELS, 1))
    filters = list(warnings.filters)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _refused(load_image, tmp_path / "max.png", 3, check) == "refused by the caller"
        assert seen[-1] == (MAX_PIXELS, 1)
    assert warnings.filters == filters


def test_over_the_pixel_limit_is_refused_from_the_header(tmp_path, monkeypatch):
    (tmp_path / "big.png").write_bytes(_png_header(MAX_PIXELS + 1, 1))
    path = tmp_path / "big.png"
    assert "is too large" in _refused(load_image, path)
    # with PIL's own limit switched off (a common setting), the tool's limit still holds
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert _refused(load_image, path, 3, lambda w, h: None) == (
        f"image {path} is too large ({MAX_PIXELS + 1}x1 pixels; at most {MAX_PIXELS} pixels); downscale it first"
    )
    (tmp_path / "wide.png").write_bytes(_png_header(20000, 10000))  # 2·10⁸ pixels (a width/height of 2 is not)

    def caller(width, height):
        raise IasideError("reached the caller")

    assert _refused(load_image, tmp_path / "wide.png", 3, caller) == (
        f"image {tmp_path / 'wide.png'} is too large (20000x10000 pixels; at most {MAX_PIXELS} pixels); downscale it first"
    )


def test_only_the_decompression_bomb_warning_is_silenced(tmp_path):
    # a PNG whose EXIF block is cut short: PIL warns while reading it, and that warning reaches the user
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010E] = "x" * 60
    Image.new("RGB", (3, 2), (9, 8, 7)).save(tmp_path / "e.png", exif=exif.tobytes()[:101])
    with pytest.warns(UserWarning, match="Truncated File Read"):
        img = load_image(tmp_path / "e.png")
    np.testing.assert_array_equal(np.asarray(img), np.full((2, 3, 3), [9, 8, 7]))


def _frames(fmt: str, n: int) -> bytes:
    frames = [Image.fromarray(np.full((4, 5, 3), 60 * k + 10, np.uint8)) for k in range(n)]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, fmt, save_all=True, append_images=frames[1:], **({"lossless": True} if fmt == "WEBP" else {})
    )
    return buffer.getvalue()


@pytest.mark.parametrize("fmt, name", [("GIF", "a.gif"), ("PNG", "a.png"), ("WEBP", "a.webp")])
def test_animations_are_refused_and_still_images_of_the_same_formats_load(tmp_path, fmt, name):
    path = tmp_path / name
    for n in (3, 2):
        path.write_bytes(_frames(fmt, n))
        assert _refused(load_image, path) == (
            f"image {path} is animated ({n} frames); save the frame to analyse as a still image, or remove it from "
            "the data"
        )
    path.write_bytes(_frames(fmt, 1))
    np.testing.assert_array_equal(np.asarray(load_image(path)), np.full((4, 5, 3), 10))


def test_a_multi_page_tiff_is_read_as_its_first_page(tmp_path):
    path = tmp_path / "pages.tif"
    path.write_bytes(_frames("TIFF", 3))
    np.testing.assert_array_equal(np.asarray(load_image(path)), np.full((4, 5, 3), 10))


def test_a_damaged_frame_table_is_unreadable(tmp_path):
    path = tmp_path / "cut.gif"
    data = _frames("GIF", 3)
    path.write_bytes(data[: len(data) - 22])  # cut inside the last frame: counting frames fails
    assert _refused(load_image, path) == (
        f"image {path} is unreadable or truncated (damaged frames (IndexError: index out of range)); "
        "re-export it or remove it from the data"
    )


def test_a_frame_table_cut_inside_a_frame_header_is_unreadable(tmp_path):
    path = tmp_path / "cut.gif"
    data = _frames("GIF", 3)
    assert len(data) == 132
    path.write_bytes(data[:104])  # cut inside a frame descriptor: PIL raises struct.error counting frames
    assert _refused(load_image, path) == (
        f"image {path} is unreadable or truncated (damaged frames (error: unpack_from requires a buffer of at "
        "least 8 bytes for unpacking 2 bytes at offset 6 (actual buffer size is 6))); re-export it or remove it "
        "from the data"
    )


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd") or not hasattr(os, "mkfifo"), reason="Linux /proc and FIFOs")
def test_only_regular_files_are_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")  # opened without blocking, refused without waiting for a writer
    (tmp_path / "folder.png").mkdir()
    before = _open_fds()
    for path, kind in [
        (tmp_path / "pipe.png", "FIFO"),
        (tmp_path / "folder.png", "folder"),
        ("/dev/null", "character device"),
    ]:
        assert _refused(load_image, path) == f"image {path} is not a regular file (a {kind}); remove it from the data"
    assert _open_fds() == before  # each refused descriptor closed


def test_missing_files_and_links_to_them(tmp_path):
    assert _refused(load_image, tmp_path / "gone.jpg") == (
        f"image {tmp_path / 'gone.jpg'} does not exist (or is a link to a missing file)"
    )
    os.symlink(tmp_path / "gone.jpg", tmp_path / "link.jpg")
    assert _refused(load_image, tmp_path / "link.jpg") == (
        f"image {tmp_path / 'link.jpg'} does not exist (or is a link to a missing file)"
    )


@pytest.mark.parametrize(
    "error, message",
    [
        (MemoryError(), "image {} needs more memory to decode than is free; downscale it first"),
        (
            OSError("bad block"),
            "image {} is unreadable or truncated (bad block); re-export it or remove it from the data",
        ),
        (
            SyntaxError("bad tag"),
            "image {} is unreadable or truncated (bad tag); re-export it or remove it from the data",
        ),
        (
            ValueError("bad mode"),
            "image {} is unreadable or truncated (bad mode); re-export it or remove it from the data",
        ),
    ],
)
def test_decoder_failures_are_one_line_naming_the_file(tmp_path, monkeypatch, error, message):
    path = tmp_path / "x.png"
    Image.new("RGB", (2, 2)).save(path)

    def failing_open(*args, **kw):
        raise error

    monkeypatch.setattr(transforms.Image, "open", failing_open)
    assert _refused(load_image, path) == message.format(path)


def test_truncated_and_non_image_files_are_unreadable(tmp_path):
    (tmp_path / "t.png").write_bytes(_png_header(6, 6))  # the header promises more data than there is
    assert _refused(load_image, tmp_path / "t.png").startswith(
        f"image {tmp_path / 't.png'} is unreadable or truncated ("
    )
    (tmp_path / "n.jpg").write_bytes(b"not an image\n")
    text = _refused(load_image, tmp_path / "n.jpg")
    assert text.startswith(f"image {tmp_path / 'n.jpg'} is unreadable or truncated (") and "\n" not in text
