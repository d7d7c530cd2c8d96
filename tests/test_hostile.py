"""Hostile inputs through the command line: each one gets a one-line ``iaside: error:`` naming
the culprit (exit code 2) or, with ``--on-bad-image skip``, a counted skip listed in the
result; odd but valid images just work. The file-level checks of the reader itself are in
test_data.py; the table of what each input got is in docs/reliability.md."""

import functools
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_ARGS as TINY
from conftest import declare_preprocessing, tiny_cnn, write_image_folder
from PIL import Image
from torch import nn

from iaside.cli import main
from iaside.config import DataConfig
from iaside.data import open_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

MIN_SIDE = 6  # 2 per band, 3 bands


@pytest.fixture
def folder(tmp_path):
    """tmp/imgs/<label>/<k>.png: 3 classes × 2 smooth random 40×36 pictures."""
    return write_image_folder(tmp_path / "imgs", 6)


def run(capsys, scripted, data, out, *extra):
    code = main(
        ["run", "--model", f"torchscript:{scripted}", "--data", str(data), *TINY, "--out", str(out), *map(str, extra)]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def assert_one_line_error(code, err, *culprits):
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("iaside: error: "), err
    for culprit in culprits:
        assert culprit in lines[0], (culprit, err)


def bilevel_png(width: int, height: int) -> bytes:
    """A valid all-white 1-bit PNG of any size, made row by row (20000×20000 is 76 KB)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    pack = zlib.compressobj(9)
    idat = b"".join(pack.compress(row) for _ in range(height)) + pack.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@functools.cache
def noise_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@functools.cache
def one_pixel_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (9, 9, 9)).save(buffer, "PNG")
    return buffer.getvalue()


BAD_FILES = {  # name: (bytes, the reason the message gives)
    "truncated.jpg": (lambda: noise_jpeg()[:700], "truncated"),
    "no-end.jpg": (lambda: noise_jpeg()[:-200], "truncated"),
    "zero-bytes.jpg": (lambda: b"", "unreadable"),
    "text.png": (lambda: b"this is not a PNG\n", "unreadable"),
    "one-pixel.png": (one_pixel_png, f"smaller than {MIN_SIDE}"),
    "huge-20000x20000.png": (functools.cache(lambda: bilevel_png(20000, 20000)), "too large"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_image_is_named_or_skipped_and_listed(tmp_path, capsys, scripted, folder, name):
    content, reason = BAD_FILES[name]
    (folder / "1" / name).write_bytes(content())
    code, _, err = run(capsys, scripted, folder, tmp_path / "stop")
    assert_one_line_error(code, err, f"1/{name}", reason)
    code, out, err = run(capsys, scripted, folder, tmp_path / "skip", "--on-bad-image", "skip")
    assert code == 0, err
    result = json.loads((tmp_path / "skip" / "result.json").read_text())
    assert result["data"]["n_images"] == 6
    assert [s["name"] for s in result["data"]["skipped"]] == [f"1/{name}"]
    assert reason in result["data"]["skipped"][0]["reason"]
    assert f"skipped 1/{name}" in out


def test_bad_image_decoded_by_loader_workers_is_still_one_line(tmp_path, capsys, scripted, folder):
    """A worker process wraps the error in its traceback; the message still comes out on one line."""
    (folder / "2" / "truncated.jpg").write_bytes(noise_jpeg()[:700])
    code, _, err = run(capsys, scripted, folder, tmp_path / "stop", "--workers", "1")
    assert_one_line_error(code, err, "2/truncated.jpg", "truncated")
    assert "Traceback" not in err and "worker" not in err
    code, _, err = run(capsys, scripted, folder, tmp_path / "skip", "--workers", "1", "--on-bad-image", "skip")
    assert code == 0, err
    skipped = json.loads((tmp_path / "skip" / "result.json").read_text())["data"]["skipped"]
    assert [s["name"] for s in skipped] == ["2/truncated.jpg"]


def test_all_bad_images_at_once_are_counted(tmp_path, capsys, scripted, folder):
    for k, (name, (content, _)) in enumerate(BAD_FILES.items()):
        (folder / str(k % 3) / name).write_bytes(content())
    code, _, err = run(capsys, scripted, folder, tmp_path / "skip", "--on-bad-image", "skip")
    assert code == 0, err
    data = json.loads((tmp_path / "skip" / "result.json").read_text())["data"]
    assert data["n_images"] == 6 and len(data["skipped"]) == len(BAD_FILES)
    assert sorted(s["name"].split("/")[1] for s in data["skipped"]) == sorted(BAD_FILES)
    with np.load(tmp_path / "skip" / "per_image.npz") as z:
        assert not set(z["names"]) & {s["name"] for s in data["skipped"]}


def _unusual_images(root):
    """Valid images in modes and shapes a folder of photos may hold; returns their names."""
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 255, (36, 40, 3), dtype=np.uint8))
    (root / "0").mkdir(parents=True)
    (root / "1").mkdir()
    rgb.convert("CMYK").save(root / "0" / "cmyk.jpg")
    rgb.convert("L").save(root / "0" / "gray.png")
    rgb.convert("RGBA").save(root / "0" / "rgba.png")
    rgb.convert("LA").save(root / "0" / "gray-alpha.png")
    rgb.convert("1").save(root / "0" / "bilevel.png")
    rgb.convert("P").save(root / "0" / "palette.png", transparency=0)
    Image.fromarray((rng.integers(0, 65535, (36, 40))).astype(np.uint16)).save(root / "1" / "16bit.png")
    Image.fromarray(rng.random((36, 40)).astype(np.float32)).save(root / "1" / "float.tif")
    rgb.save(root / "1" / "photo.webp")
    rgb.resize((MIN_SIDE, MIN_SIDE)).save(root / "1" / "just-big-enough.png")
    rgb.resize((MIN_SIDE, 300)).save(root / "1" / "very-tall.png")
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # left red, right blue; displayed rotated 90° clockwise
    stored[:, :20, 0] = 255
    stored[:, 20:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(root / "1" / "exif-rotated.jpg", exif=exif, quality=95)
    return sorted(f"{d.name}/{f.name}" for d in root.iterdir() for f in d.iterdir())


def test_unusual_but_valid_images_just_work(tmp_path, capsys, scripted):
    names = _unusual_images(tmp_path / "odd")
    code, _, err = run(capsys, scripted, tmp_path / "odd", tmp_path / "out")
    assert code == 0, err
    data = json.loads((tmp_path / "out" / "result.json").read_text())["data"]
    assert data["n_images"] == len(names) == 12 and data["skipped"] == []
    with np.load(tmp_path / "out" / "per_image.npz") as z:
        assert sorted(z["names"]) == names and np.isfinite(z["logp_nats"]).all()
    # the EXIF orientation is applied: upright, red is on top and blue below
    dataset = open_dataset(str(tmp_path / "odd"), DataConfig(input_size=(32, 32), resize_size=32))
    upright = dataset[names.index("1/exif-rotated.jpg")].pixels
    top, bottom = upright[:, :8].mean(dim=(1, 2)), upright[:, -8:].mean(dim=(1, 2))  # (R, G, B) means
    assert top[0] > 0.8 and top[2] < 0.2 and bottom[2] > 0.8 and bottom[0] < 0.2


def test_same_file_name_in_two_class_folders_is_two_images(tmp_path, capsys, scripted, folder):
    Image.new("RGB", (40, 36), (250, 20, 20)).save(folder / "0" / "same.png")
    Image.new("RGB", (40, 36), (20, 20, 250)).save(folder / "2" / "same.png")
    (folder / "1" / "same.png").write_bytes(b"broken")
    code, _, err = run(capsys, scripted, folder, tmp_path / "out", "--on-bad-image", "skip")
    assert code == 0, err
    data = json.loads((tmp_path / "out" / "result.json").read_text())["data"]
    assert data["n_images"] == 8 and [s["name"] for s in data["skipped"]] == ["1/same.png"]
    with np.load(tmp_path / "out" / "per_image.npz") as z:
        names = list(z["names"])
        a, b = names.index("0/same.png"), names.index("2/same.png")
        assert (z["label"][a], z["label"][b]) == (0, 2)
        assert not np.array_equal(z["logp_nats"][a], z["logp_nats"][b])


@pytest.fixture
def flat(tmp_path):
    """tmp/flat/{a,b,c}.png without class folders (labels come from a CSV)."""
    root = tmp_path / "flat"
    root.mkdir()
    for k, name in enumerate("abc"):
        Image.new("RGB", (40, 36), (80 * k, 100, 200 - 50 * k)).save(root / f"{name}.png")
    return root


@pytest.mark.parametrize(
    "csv_text, culprits",
    [
        ("a.png,0\nb.png,unicorn\nc.png,1\n", ["labels.csv line 2", "unicorn"]),
        ("a.png,0\nb.png,1\nc.png,2\nghost.png,1\n", ["ghost.png"]),
        ("a.png,0\nb.png,1\n", ["c.png", "no line"]),
        ("a.png,0\nb.png,5\nc.png,1\n", ["'b.png'", "label 5", "3 classes"]),  # beyond the model's K
    ],
    ids=["unknown-class-name", "unknown-file", "unlabelled-file", "label-beyond-K"],
)
def test_labels_file_problems_are_named(tmp_path, capsys, scripted, flat, csv_text, culprits):
    (tmp_path / "labels.csv").write_text(csv_text)
    code, _, err = run(capsys, scripted, flat, tmp_path / "out", "--labels", tmp_path / "labels.csv")
    assert_one_line_error(code, err, *culprits)


BUG_LABEL_OVERFLOW = (
    "core: a label of 2**63 or more passes the CSV parser, then the engine's torch.tensor(labels) raises "
    "'ValueError: Overflow when unpacking long long' (docs/reliability.md, bug 3)"
)
BUG_CSV_NOT_UTF8 = (
    "core: a labels CSV that is not UTF-8 escapes the parser as UnicodeDecodeError (docs/reliability.md, bug 1)"
)
BUG_CSV_GIANT_FIELD = (
    "core: a labels CSV field over 128 KiB escapes the parser as _csv.Error 'field larger than field limit' "
    "(docs/reliability.md, bug 2)"
)


def test_label_too_large_for_int64_is_named(tmp_path, capsys, scripted, flat):
    (tmp_path / "labels.csv").write_text("a.png,0\nb.png,99999999999999999999999\nc.png,1\n")
    code, _, err = run(capsys, scripted, flat, tmp_path / "out", "--labels", tmp_path / "labels.csv")
    assert_one_line_error(code, err, "b.png", "99999999999999999999999")


def test_labels_file_not_utf8_is_named(tmp_path, capsys, scripted, flat):
    (tmp_path / "labels.csv").write_bytes("a.png,0\nb.png,caf\xe9\nc.png,1\n".encode("latin-1"))
    code, _, err = run(capsys, scripted, flat, tmp_path / "out", "--labels", tmp_path / "labels.csv")
    assert_one_line_error(code, err, "labels.csv")


def test_labels_file_with_a_giant_field_is_named(tmp_path, capsys, scripted, flat):
    (tmp_path / "labels.csv").write_text("a.png,0\nb.png," + "1" * 200_000 + "\nc.png,1\n")
    code, _, err = run(capsys, scripted, flat, tmp_path / "out", "--labels", tmp_path / "labels.csv")
    assert_one_line_error(code, err, "labels.csv")


class BadOnOvershoot(nn.Module):
    """The tiny CNN, but every logit is ``value`` for an input with a pixel below −0.05: never a
    clean image (pixels in [0, 1], identity normalisation), often an unclipped coalition image."""

    def __init__(self, value: float):
        super().__init__()
        self.net = tiny_cnn(n_classes=3)
        self.value = value

    def forward(self, x):
        logits = self.net(x)
        bad = (x.amin(dim=(1, 2, 3)) < -0.05)[:, None]
        return torch.where(bad, torch.full_like(logits, self.value), logits)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_model_returning_nan_or_inf_names_image_and_coalition(tmp_path, capsys, folder, value):
    path = declare_preprocessing(tmp_path / "bad.pt")
    torch.jit.script(BadOnOvershoot(value)).save(str(path))
    code, _, err = run(capsys, path, folder, tmp_path / "out", "--mean", "0", "--std", "1")
    assert_one_line_error(code, err, "NaN/inf", "image '", "coalition {")
    assert "clean image" not in err


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs: refuses root too (skipped where mounting is not allowed)."""
    where = tmp_path / "read_only"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(where)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.parametrize("where", ["under-a-file", "read-only-fs"])
def test_unwritable_output_folder_is_named(tmp_path, capsys, scripted, folder, request, where):
    if where == "under-a-file":
        (tmp_path / "file.txt").write_text("a file, not a folder")
        out, reason = tmp_path / "file.txt" / "sub", "Not a directory"
    else:
        out, reason = request.getfixturevalue("read_only_dir") / "run", "Read-only file system"
    code, _, err = run(capsys, scripted, folder, out)
    assert_one_line_error(code, err, str(out), reason, "--out")


def test_huge_images_do_not_blow_up_memory(tmp_path, scripted, folder):
    """20000×20000 (4e8 pixels) is refused from its header; 10000×10000 (1e8, under the
    limit) is decoded. The child's peak resident memory stays well under 1.5 GiB."""
    (folder / "0" / "huge-20000x20000.png").write_bytes(bilevel_png(20000, 20000))
    (folder / "1" / "big-10000x10000.png").write_bytes(bilevel_png(10000, 10000))
    peak_file = tmp_path / "peak-rss-kib.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IASIDE_STORE": "off", "IASIDE_TEST_PEAK_RSS_FILE": str(peak_file)}
    child = Path(__file__).with_name("reliability_child.py")
    proc = subprocess.run(
        [
            sys.executable,
            str(child),
            "cli",
            "run",
            "--model",
            f"torchscript:{scripted}",
            "--data",
            str(folder),
            *TINY,
            "--on-bad-image",
            "skip",
            "--out",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "result.json").read_text())["data"]
    assert [s["name"] for s in data["skipped"]] == ["0/huge-20000x20000.png"]
    assert "too large" in data["skipped"][0]["reason"] and data["n_images"] == 7
    peak_mib = int(peak_file.read_text()) / 1024
    assert peak_mib < 1536, f"peak RSS {peak_mib:.0f} MiB"
