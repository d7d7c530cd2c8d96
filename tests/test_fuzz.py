"""Fuzzing the input readers with hypothesis: whatever bytes an image file or a labels CSV
holds, the outcome is either valid (pixels (C, H, W) float32 in [0, 1], labels that are class
indices) or an ``IasideError`` — never another exception type, never a hang.

No hypothesis deadline (a busy machine makes timings meaningless); a hang guard (SIGALRM,
60 s per example) turns a real hang into a failure instead. The CSV fuzz covers valid files,
mutated rows, random text and random bytes (including non-UTF-8 and fields over 128 KiB).
"""

import contextlib
import io
import signal
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from iaside.config import INTERPOLATIONS, DataConfig
from iaside.data import ImageDataset, open_dataset
from iaside.errors import IasideError

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
HANG_S = 60


@contextlib.contextmanager
def hang_guard(seconds: int = HANG_S):
    """Fail (not wait forever) when the body runs longer than ``seconds``."""

    def alarm(signum, frame):
        raise AssertionError(f"hang: the reader ran for more than {seconds} s on one input")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


configs = st.builds(
    lambda h, w, extra, interpolation, gray: DataConfig(
        input_size=(h, w),
        resize_size=max(h, w) + extra,
        interpolation=interpolation,
        **({"channels": 1, "mean": (0.5,), "std": (0.5,)} if gray else {}),
    ),
    st.integers(1, 24),
    st.integers(1, 24),
    st.integers(0, 8),
    st.sampled_from(INTERPOLATIONS),
    st.booleans(),
)


def read_or_refuse(path, cfg: DataConfig, min_side: int = 1) -> None:
    """Decode ``path`` as the data sets do; pass on a valid tensor or an IasideError, and on
    nothing else."""
    data = ImageDataset([(path, 0, path.name)], cfg)
    data.min_side = min_side
    with hang_guard(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL warns about corrupt EXIF/TIFF tags; the outcome is what counts
        try:
            pixels = data[0].pixels
        except IasideError as err:
            assert path.name in str(err) or "image" in str(err)
            reason = next((r for r in ("unreadable", "too large", "smaller than") if r in str(err)), "other")
            event(f"refused: {reason}")
            return
    event("decoded")
    assert isinstance(pixels, torch.Tensor) and pixels.dtype == torch.float32
    assert pixels.shape == (cfg.channels, *cfg.input_size)
    assert torch.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1


MAGIC = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"%!PS-Adobe-3.0 EPSF-3.0\n",
    b"8BPS",
    b"P6\n4 4\n255\n",
    b"\x00\x00\x01\x00",
]
EXTENSIONS = [".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"]


@settings(FUZZ, max_examples=300)
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=2048), ext=st.sampled_from(EXTENSIONS), cfg=configs)
def test_reader_on_arbitrary_bytes(scratch, magic, body, ext, cfg):
    path = scratch / f"random{ext}"
    path.write_bytes(magic + body)
    read_or_refuse(path, cfg)


FORMATS = [
    ("PNG", "RGB"),
    ("PNG", "RGBA"),
    ("PNG", "P"),
    ("PNG", "L"),
    ("PNG", "I;16"),
    ("PNG", "1"),
    ("JPEG", "RGB"),
    ("JPEG", "L"),
    ("JPEG", "CMYK"),
    ("BMP", "RGB"),
    ("WEBP", "RGB"),
    ("TIFF", "RGB"),
    ("TIFF", "F"),
    ("TIFF", "I;16"),
    ("GIF", "P"),
]


def encode(fmt: str, mode: str, width: int, height: int, seed: int, exif_orientation: int) -> bytes:
    rng = np.random.default_rng(seed)
    if mode == "F":
        img = Image.fromarray((rng.random((height, width)) * 1.4 - 0.2).astype(np.float32))  # also beyond [0, 1]
    elif mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (height, width)).astype(np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    kwargs = {}
    if exif_orientation and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    img.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


corruptions = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
        st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
        st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64)),
        st.tuples(st.just("insert"), st.floats(0, 1), st.integers(0, 255)),
    ),
    max_size=6,
)


def corrupt(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        at = min(int(where * len(out)), max(len(out) - 1, 0))
        if kind == "flip" and out:
            out[at] = value
        elif kind == "truncate":
            del out[at:]
        elif kind == "delete":
            del out[at : at + value]
        elif kind == "insert":
            out[at:at] = bytes([value]) * 4
    return bytes(out)


@settings(FUZZ, max_examples=400)
@given(
    fmt=st.sampled_from(FORMATS),
    width=st.integers(1, 48),
    height=st.integers(1, 48),
    seed=st.integers(0, 99),
    orientation=st.sampled_from([0, 1, 3, 6, 8]),
    edits=corruptions,
    cfg=configs,
    min_side=st.integers(1, 8),
)
def test_reader_on_corrupted_valid_images(scratch, fmt, width, height, seed, orientation, edits, cfg, min_side):
    name, mode = fmt
    path = scratch / f"corrupted.{name.lower()}"
    path.write_bytes(corrupt(encode(name, mode, width, height, seed, orientation), edits))
    read_or_refuse(path, cfg, min_side)


FILES = ["a.png", "b.png", "c d.png", "sub/e.png"]
CLASS_NAMES = ["cat", "dog", "golden retriever"]
good_labels = st.one_of(
    st.integers(0, 2).map(str),
    st.sampled_from(CLASS_NAMES),
    st.sampled_from(["Dog", "golden_retriever", " cat ", "2 "]),
)
cells = st.one_of(
    good_labels,
    st.sampled_from(FILES),
    st.integers(-3, 2**70).map(str),
    st.sampled_from(["filename", "label", "", "n01440764", "१", "½", "0x1", "a.png ", "A.PNG", "./a.png"]),
    st.text(max_size=12),
)
mutations = st.lists(
    st.tuples(
        st.sampled_from(["drop", "duplicate", "replace", "junk", "extra-column"]),
        st.integers(0, 9),
        st.integers(0, 1),
        cells,
    ),
    max_size=3,
)
separators = st.sampled_from([",", ",", ",", ", ", ";", "\t"])
newlines = st.sampled_from(["\n", "\r\n", "\r"])


def to_csv(lines, separator, newline, quote) -> str:
    def cell(text):
        return '"' + text.replace('"', '""') + '"' if quote else text

    return newline.join(separator.join(cell(c) for c in line) for line in lines) + newline


def mutate(lines: list[list[str]], edits) -> list[list[str]]:
    """Near-valid rows: drop, duplicate or rewrite a row or a cell, add junk rows and columns."""
    lines = [list(line) for line in lines]
    for kind, row, column, text in edits:
        at = row % (len(lines) + 1)
        if kind == "junk" or not lines:
            lines.insert(at, [text])
            continue
        at %= len(lines)
        if kind == "drop":
            del lines[at]
        elif kind == "duplicate":
            lines.insert(at, list(lines[at]))
        elif kind == "replace":
            lines[at][column % len(lines[at])] = text
        else:
            lines[at].append(text)
    return lines


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    root = tmp_path_factory.mktemp("flat")
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(root / name)
    return root


def parse_or_refuse(flat, text: str | bytes) -> None:
    csv_path = flat.parent / f"{flat.name}-labels.csv"
    csv_path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    with hang_guard():
        try:
            data = open_dataset(
                str(flat), DataConfig(input_size=(8, 8), resize_size=8), labels=str(csv_path), class_names=CLASS_NAMES
            )
        except IasideError as err:
            assert str(err)
            event("refused")
            return
    event("parsed")
    assert sorted(data.names) == sorted(FILES)  # every image exactly once
    assert all(isinstance(label, int) and label >= 0 for label in data.labels)


@settings(FUZZ, max_examples=200)
@given(
    labels=st.lists(good_labels, min_size=len(FILES), max_size=len(FILES)),
    header=st.booleans(),
    order=st.permutations(range(len(FILES))),
    edits=mutations,
    separator=separators,
    newline=newlines,
    quote=st.booleans(),
)
def test_labels_csv_on_mutated_rows(flat, labels, header, order, edits, separator, newline, quote):
    lines = ([["filename", "label"]] if header else []) + [[FILES[i], labels[i]] for i in order]
    parse_or_refuse(flat, to_csv(mutate(lines, edits), separator, newline, quote))


@settings(FUZZ, max_examples=100)
@given(text=st.text(max_size=400))
def test_labels_csv_on_random_text(flat, text):
    parse_or_refuse(flat, text)


@settings(FUZZ, max_examples=100)
@given(
    prefix=st.sampled_from([b"", b"a.png,0\n", b"\xef\xbb\xbf"]),
    body=st.binary(max_size=400),
    giant=st.sampled_from([0, 200_000]),
)
def test_labels_csv_on_random_bytes(flat, prefix, body, giant):
    parse_or_refuse(flat, prefix + body + b"1" * giant)


@settings(FUZZ, max_examples=60)
@given(
    labels=st.lists(
        st.one_of(st.integers(0, 2).map(str), st.sampled_from(CLASS_NAMES)), min_size=len(FILES), max_size=len(FILES)
    ),
    header=st.booleans(),
    order=st.permutations(range(len(FILES))),
)
def test_labels_csv_valid_files_parse_to_the_right_labels(flat, labels, header, order):
    lines = ([["filename", "label"]] if header else []) + [[FILES[i], labels[i]] for i in order]
    csv_path = flat.parent / "valid-labels.csv"
    csv_path.write_text(to_csv(lines, ",", "\n", False), encoding="utf-8")
    data = open_dataset(
        str(flat), DataConfig(input_size=(8, 8), resize_size=8), labels=str(csv_path), class_names=CLASS_NAMES
    )
    expect = {f: int(t) if t.isdigit() else CLASS_NAMES.index(t) for f, t in zip(FILES, labels)}
    assert dict(zip(data.names, data.labels)) == expect
