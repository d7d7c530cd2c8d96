"""A user's in-memory data read as ImageItems (``iaside/data/user_data.py``, ``inputs.py``,
``tensors.py``, ``resolve.py``), without running the engine: every item's pixels and label
against the tensors built here (uint8 / 255 computed with numpy, layouts moved with numpy),
the one-line note of what was filled in, the fingerprint from its documented recipe, and
every refusal's exact message. Tiny tensors only: the fast test selection of
`python benchmarks/mutation.py user_data|inputs|tensors|resolve` (docs/proofs.md §6)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SubsetRandomSampler,
    TensorDataset,
)

from iaside.config import DataConfig, ExplainConfig
from iaside.data.base import PREDICTED, ImageItem
from iaside.data.datasets import ImageDataset
from iaside.data.inputs import _is_batch, _is_label_batch, _yields_items, as_dataset
from iaside.data.resolve import find_bad_images, resolve_data
from iaside.data.tensors import TensorImages
from iaside.data.transforms import preprocess
from iaside.data.user_data import DatasetImages, _label, _split, materialise, read_loader
from iaside.errors import IasideError

CFG = DataConfig(input_size=(3, 4), resize_size=3, interpolation="nearest", mean=(0.1, 0.2, 0.3), std=(0.5,) * 3)


def _bytes(n=3, c=3, h=3, w=4, seed=0) -> np.ndarray:
    """(n, c, h, w) uint8 pixels, all different within an image, one image at 0 and 255."""
    a = (np.random.default_rng(seed).permutation(n * c * h * w) % 256).astype(np.uint8).reshape(n, c, h, w)
    a[0, 0, 0, :2] = 0, 255
    return a


def _refused(call, *args, **kw) -> str:
    with pytest.raises(IasideError) as err:
        out = call(*args, **kw)
        for i in range(len(out)):  # a data set's items are read here
            out[i]
    return str(err.value)


def _notes(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("iaside: note: ")]


class Items(Dataset):
    """A map-style data set over a list, counting reads."""

    def __init__(self, items):
        self.items, self.reads = list(items), 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        self.reads += 1
        return self.items[i]


class Stream(IterableDataset):
    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)


# ---- _split and _label -----------------------------------------------------------------------


def test_split_reads_pairs_singles_and_dicts_by_their_keys():
    assert _split(("im", 3), "w") == ("im", 3) and _split(["im", 4], "w") == ("im", 4)
    assert _split(("im",), "w") == ("im", None) and _split("im", "w") == ("im", None)
    # the first image key and the first label key in their order of preference
    assert _split({"pixels": "p", "pixel_values": "v", "img": "i", "image": "m", "y": 0, "target": 1}, "w") == ("m", 1)
    assert _split({"pixels": "p", "pixel_values": "v", "img": "i", "y": 0, "labels": 2}, "w") == ("i", 2)
    assert _split({"pixels": "p", "pixel_values": "v", "label": 5, "labels": 2}, "w") == ("v", 5)
    assert _split({"pixels": "p", "y": 7}, "w") == ("p", 7)
    assert _split({"pixels": "p"}, "w") == ("p", None)
    assert _refused(_split, {"picture": 1, 2: 3}, "data[4]") == (
        "data[4] is a dict without an image (image, img, pixel_values, pixels); it has picture, 2"
    )
    assert "without an image" in _refused(_split, {"image": None, "label": 1}, "data[4]")
    assert _refused(_split, ("a", 1, "b"), "data batch 2") == (
        "data batch 2 has 3 parts; yield (image, label) or the image alone"
    )
    assert "has 0 parts" in _refused(_split, (), "data[0]")


def test_label_takes_one_integer_in_any_wrapper():
    for value in (3, np.int64(3), np.uint8(3), torch.tensor(3), torch.tensor([3]), np.array([[3]]), np.array(3)):
        got = _label(value, "data[1]")
        assert got == 3 and type(got) is int
    assert _label(0, "w") == 0
    for value, shown in [(True, "True"), (np.bool_(False), "np.False_"), (0.5, "0.5"), ("3", "'3'"), (None, "None")]:
        assert _refused(_label, value, "data[1]") == f"data[1]: label {shown} is not an integer class index"
    assert _refused(_label, torch.tensor(2.0), "data[1]") == "data[1]: label 2.0 is not an integer class index"
    assert "label tensor([1, 2]) is not" in _refused(_label, torch.tensor([1, 2]), "data[1]")
    assert "label array([1, 2]) is not" in _refused(_label, np.array([1, 2]), "data[1]")
    assert _refused(_label, torch.tensor(-2), "data[6]") == (
        "data[6]: label -2 is negative; labels are class indices 0..K-1"
    )
    assert "label -1 is negative" in _refused(_label, np.int8(-1), "w")


# ---- DatasetImages ---------------------------------------------------------------------------


def test_a_dataset_of_uint8_tensors_and_labels_is_read_item_by_item(capsys):
    a = _bytes()
    data = DatasetImages(Items([(torch.from_numpy(a[i]), torch.tensor(i + 2)) for i in range(3)]), CFG)
    assert _notes(capsys) == ["iaside: note: data: Dataset Items: uint8 rescaled to [0, 1] (/ 255)"]
    assert data.description == "Dataset Items (3 items), uint8 rescaled to [0, 1] (/ 255)"
    assert len(data) == 3 and data.labels_kind == "given" and data.shape == (3, 3, 4) and data.uint8
    assert data.names == ["data[0]", "data[1]", "data[2]"] and data.class_names is None
    for i in (0, 1, 2, -1):
        item = data[i]
        k = i % 3
        assert isinstance(item, ImageItem) and (item.label, item.index, item.name) == (k + 2, k, f"data[{k}]")
        assert item.pixels.dtype == torch.float32 and item.pixels.is_contiguous()
        np.testing.assert_allclose(item.pixels.numpy(), a[k] / 255, rtol=0, atol=1e-7)
    with pytest.raises(IndexError):
        data[3]


def test_float_channel_last_and_grey_items_without_labels(capsys):
    f = _bytes(2, h=4, w=5).astype(np.float64) / 255  # H, W not 1 or 3: the layout is not ambiguous
    hwc = DatasetImages(Items([np.moveaxis(f[i], 0, 2) for i in range(2)]), CFG)
    assert _notes(capsys) == ["iaside: note: data: Dataset Items: items without labels: labels predicted by the model"]
    assert hwc.description == "Dataset Items (2 items), items without labels: labels predicted by the model"
    assert hwc.labels_kind == "predicted" and not hwc.uint8
    item = hwc[1]
    assert item.label == PREDICTED and item.pixels.dtype == torch.float32
    np.testing.assert_allclose(item.pixels.numpy(), f[1], rtol=0, atol=1e-7)
    grey = DatasetImages(Items([(f[i, 0], i) for i in range(2)]), CFG, predicted=True)
    assert _notes(capsys) == [
        "iaside: note: data: Dataset Items: given labels replaced by the model's top-1 (labels='predicted')"
    ]
    assert grey.shape == (1, 4, 5) and grey[0].label == PREDICTED
    np.testing.assert_allclose(grey[1].pixels.numpy(), f[1, :1], rtol=0, atol=1e-7)
    both = DatasetImages(Items([torch.from_numpy(_bytes(1)[0])]), CFG)
    assert both.description == (
        "Dataset Items (1 items), uint8 rescaled to [0, 1] (/ 255), items without labels: labels predicted by the model"
    )
    assert _notes(capsys) == [
        "iaside: note: data: Dataset Items: uint8 rescaled to [0, 1] (/ 255); items without labels: labels predicted "
        "by the model"
    ]
    # float items with labels: nothing filled in, nothing said
    DatasetImages(Items([(torch.from_numpy(f[0]), 1)]), CFG)
    assert _notes(capsys) == []


def test_pil_images_and_paths_are_preprocessed_by_the_config(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    img.save(tmp_path / "a.png")
    data = DatasetImages(Items([(img, 1), (str(tmp_path / "a.png"), 0)]), CFG)
    assert data.shape is None
    want = preprocess(img, CFG)
    assert torch.equal(data[0].pixels, want) and torch.equal(data[1].pixels, want)
    grey_cfg = DataConfig(input_size=(3, 4), resize_size=3, mean=(0.5,), std=(0.5,), channels=1)
    grey = DatasetImages(Items([(tmp_path / "a.png", 0)]), grey_cfg)
    assert torch.equal(grey[0].pixels, preprocess(img.convert("L"), grey_cfg))
    missing = DatasetImages(Items([(img, 0), (tmp_path / "b.png", 1)]), CFG)
    assert _refused(lambda: missing[1]) == (
        f"data[1]: image {tmp_path / 'b.png'} does not exist (or is a link to a missing file)"
    )
    small = DatasetImages(Items([(img, 0), (Image.new("RGB", (3, 2)), 1)]), CFG)
    small.min_side = 3
    assert _refused(lambda: small[1]) == (
        "data[1] is 3x2 pixels, smaller than 3 on a side (2 per band); use fewer bands or leave the image out"
    )
    small.min_side = 2
    assert tuple(small[1].pixels.shape) == (3, 3, 4)
    # by default any image of at least one pixel a side is read (resized by the config)
    line = Image.fromarray(np.arange(5, dtype=np.uint8).reshape(1, 5) * 50)
    assert torch.equal(DatasetImages(Items([line]), CFG)[0].pixels, preprocess(line, CFG))


def test_paths_are_decoded_at_the_config_s_channels(tmp_path):
    # a YCbCr TIFF read for a grey model: its Y plane itself (through RGB it would be off by a level)
    ycc = Image.fromarray(np.random.default_rng(0).integers(0, 256, (3, 4, 3), dtype=np.uint8)).convert("YCbCr")
    ycc.save(tmp_path / "y.tif")
    grey_cfg = DataConfig(input_size=(3, 4), resize_size=3, mean=(0.5,), std=(0.5,), channels=1)
    y = np.asarray(ycc)[..., 0]
    assert not np.array_equal(np.asarray(ycc.convert("RGB").convert("L")), y)
    data = DatasetImages(Items([(tmp_path / "y.tif", 0)]), grey_cfg)
    np.testing.assert_allclose(data[0].pixels.numpy(), y[None] / 255, rtol=0, atol=1e-7)
    np.testing.assert_allclose(data.subset([0])[0].pixels.numpy(), y[None] / 255, rtol=0, atol=1e-7)


def test_dataset_refusals_name_the_item():
    x = torch.from_numpy(_bytes(2))
    f = x.float() / 255
    cases = [
        (Items([(x[0], 0), (f[1], 1)]), "data[1] is float32 but item 0 is uint8; give every image the same pixel type"),
        (Items([(f[0], 0), (x[1], 1)]), "data[1] is uint8 but item 0 is float; give every image the same pixel type"),
        (
            Items([(f[0], 0), (f[:2], 1)]),
            "data[1]: one image is (C, H, W), (H, W, C) or (H, W); got shape (2, 3, 3, 4)",
        ),
        (
            Items([(f[0], 0), (f[0, :, :2], 1)]),
            "data[1] has shape (3, 2, 4) but item 0 has (3, 3, 4); give images "
            "of one size (resize them in the data set's transform)",
        ),
        (Items([(f[0], 0), (f[1], None)]), "data[1] has no label but item 0 has one; label every item or none"),
        (Items([(f[0], 0), (f[1], 1.5)]), "data[1]: label 1.5 is not an integer class index"),
        (
            Items([(f[0], 0), (f[0] * 2, 1)]),
            "data[1]: float pixel values span [0, 2], outside [0, 1]; they look like "
            "0-255 values: pass x / 255 (or the uint8 tensor itself)",
        ),
        (
            Items([(f[0], 0), (3, 1)]),
            "data[1]: the image is a int; yield a tensor, a numpy array, a PIL image or a path",
        ),
        (
            Items([(f[0], 0), (f[1].to(torch.int32), 1)]),
            "data[1]: pixels must be uint8 (0-255) or float in [0, 1], not "
            "int32; convert them (e.g. x.astype('float32') / 65535 for 16-bit images)",
        ),
        (Items([]), "data: Dataset Items is empty"),
        (Items([(f[0], 0), (f[1], 1, "x")]), "data[1] has 3 parts; yield (image, label) or the image alone"),
        (Items([{"pic": f[0]}]), "data[0] is a dict without an image (image, img, pixel_values, pixels); it has pic"),
        (
            Items([(f[0] * 2, 0)]),
            "data[0]: float pixel values span [0, 2], outside [0, 1]; they look like 0-255 values: "
            "pass x / 255 (or the uint8 tensor itself)",
        ),
    ]
    for data, message in cases:
        assert _refused(DatasetImages, data, CFG) == message

    class NoLength(Dataset):
        def __getitem__(self, i):
            return f[0]

    assert _refused(DatasetImages, NoLength(), CFG) == (
        "data: NoLength has no length (object of type 'NoLength' has no len()); pass a map-style Dataset, "
        "or wrap it in a DataLoader"
    )

    class ByName(Items):
        def __getitem__(self, key):
            return {"a": (f[0], 0)}[key]

    assert _refused(DatasetImages, ByName([1]), CFG) == (
        "data: ByName cannot be read by position (data[0] raised KeyError: 0); pass a Dataset whose [i] is "
        "(image, label)"
    )

    class ByText(Items):
        def __getitem__(self, key):
            return "abc"[key + "x"]

    assert "data: ByText cannot be read by position (data[0] raised TypeError: " in _refused(
        DatasetImages, ByText([1]), CFG
    )


def test_dataset_fingerprint_is_its_documented_hash_read_once():
    f = torch.from_numpy(_bytes(3)).float() / 255
    source = Items([(f[0], 4), (f[1], 0), (f[2], 2)])
    data = DatasetImages(source, CFG)
    h = hashlib.sha256(repr(CFG.to_dict()).encode())
    for i, label in enumerate((4, 0, 2)):
        h.update(f[i].numpy().tobytes())
        h.update(str(label).encode())
    reads = source.reads
    assert data.fingerprint() == h.hexdigest()[:16]
    assert source.reads == reads + 3 and data.fingerprint() == h.hexdigest()[:16] and source.reads == reads + 3
    # an unreadable item adds its message instead of pixels
    bad = DatasetImages(Items([(f[0], 4), (f[0] * 3, 0)]), CFG)
    h = hashlib.sha256(repr(CFG.to_dict()).encode())
    h.update(f[0].numpy().tobytes())
    h.update(b"4")
    h.update(
        b"data[1]: float pixel values span [0, 3], outside [0, 1]; they look like 0-255 values: pass x / 255 "
        b"(or the uint8 tensor itself)"
    )
    assert bad.fingerprint() == h.hexdigest()[:16]
    # the same pixels as uint8 give the same fingerprint; the config is part of it
    as_bytes = DatasetImages(Items([(torch.from_numpy(_bytes(3)[i]), lab) for i, lab in enumerate((4, 0, 2))]), CFG)
    assert as_bytes.fingerprint() == data.fingerprint()
    other = DataConfig(input_size=(3, 4), resize_size=3, interpolation="nearest", mean=(0.1, 0.2, 0.3), std=(0.6,) * 3)
    assert DatasetImages(source, other).fingerprint() != data.fingerprint()


def test_dataset_subset_keeps_the_original_positions(capsys):
    a = _bytes(5)
    data = DatasetImages(Items([(torch.from_numpy(a[i]), 10 + i) for i in range(5)]), CFG, predicted=False)
    capsys.readouterr()
    sub = data.subset([3, 1, -1])
    assert _notes(capsys) == []  # said once, for the whole data set
    assert sub.indices == [3, 1, 4] and sub.names == ["data[3]", "data[1]", "data[4]"] and len(sub) == 3
    assert sub.description == "Dataset Items [3 of 5] (3 items), uint8 rescaled to [0, 1] (/ 255)"  # its own count
    item = sub[2]
    assert (item.label, item.index, item.name) == (14, 2, "data[4]")
    np.testing.assert_allclose(item.pixels.numpy(), a[4] / 255, rtol=0, atol=1e-7)
    subsub = sub.subset([0])
    assert subsub.indices == [3] and subsub.description.startswith("Dataset Items [3 of 5] [1 of 3] (1 items),")
    predicted = DatasetImages(Items([(torch.from_numpy(a[i]), i) for i in range(5)]), CFG, predicted=True)
    assert predicted.subset([2])[0].label == PREDICTED


# ---- read_loader and materialise -------------------------------------------------------------


def test_a_loader_that_yields_its_data_set_is_read_through_it():
    x, y = torch.from_numpy(_bytes(4)), torch.tensor([3, 1, 4, 1])
    ds = TensorDataset(x, y)
    for loader in (
        DataLoader(ds, batch_size=3),
        DataLoader(ds, batch_size=3, shuffle=True),
        DataLoader(ds, batch_size=3, sampler=RandomSampler(ds, replacement=False, num_samples=4)),
    ):
        data = read_loader(loader, CFG, predicted=False)
        assert isinstance(data, DatasetImages) and data.what == "DataLoader over TensorDataset"
        assert [data[i].label for i in range(4)] == [3, 1, 4, 1]
    assert read_loader(DataLoader(ds), CFG, predicted=True)[0].label == PREDICTED
    # PIL images through the loader's data set: preprocessed by the config (also in a subset)
    pics = [Image.fromarray(np.random.default_rng(k).integers(0, 256, (6, 8, 3), dtype=np.uint8)) for k in range(2)]
    lazy = read_loader(DataLoader(Items([(p, k) for k, p in enumerate(pics)])), CFG, predicted=False)
    assert isinstance(lazy, DatasetImages) and torch.equal(lazy[1].pixels, preprocess(pics[1], CFG))
    assert torch.equal(lazy.subset([1])[0].pixels, preprocess(pics[1], CFG))


def test_a_loader_that_changes_its_items_is_gathered_batch_by_batch(capsys):
    a = _bytes(4)
    x, y = torch.from_numpy(a), torch.tensor([3, 1, 4, 1])
    ds = TensorDataset(x, y)

    class Batches(BatchSampler):
        pass

    for loader, n in [
        (DataLoader(ds, batch_size=3, drop_last=True), 3),
        (DataLoader(ds, batch_size=2, sampler=RandomSampler(ds, replacement=True, num_samples=4)), 4),
        (DataLoader(ds, batch_size=2, sampler=RandomSampler(ds, num_samples=2)), 2),
        (
            DataLoader(
                ds, batch_size=2, collate_fn=lambda b: (torch.stack([i[0] for i in b]), torch.stack([i[1] for i in b]))
            ),
            4,
        ),
        # a batch sampler of its own (batches of one: the loader then has no batch_size)
        (DataLoader(ds, batch_sampler=Batches(range(4), batch_size=1, drop_last=False)), 4),
    ]:
        capsys.readouterr()
        data = read_loader(loader, CFG, predicted=False)
        assert isinstance(data, TensorImages) and len(data) == n
        assert data.description == f"DataLoader over TensorDataset ({n} images), rescaled to [0, 1] (/ 255)"
        assert _notes(capsys) == [
            f"iaside: note: data: DataLoader over TensorDataset ({n} images): rescaled to [0, 1] (/ 255)"
        ]
    # in order (sequential sampler, custom collation): every image and label, uint8 kept
    data = read_loader(DataLoader(ds, batch_size=3, collate_fn=lambda b: tuple(map(torch.stack, zip(*b)))), CFG, False)
    assert data.images.dtype == torch.uint8 and data.labels == [3, 1, 4, 1]
    np.testing.assert_allclose(torch.stack([data[i].pixels for i in range(4)]).numpy(), a / 255, rtol=0, atol=1e-7)
    assert read_loader(DataLoader(ds, batch_size=3, drop_last=True), CFG, True).labels == [PREDICTED] * 3
    # PIL images gathered from batches (a collation that keeps them a list): preprocessed by the config
    pics = [Image.fromarray(np.random.default_rng(k).integers(0, 256, (6, 8, 3), dtype=np.uint8)) for k in range(3)]
    pil_loader = DataLoader(
        Items([(p, k) for k, p in enumerate(pics)]), batch_size=2, collate_fn=lambda b: tuple(zip(*b))
    )
    gathered = read_loader(pil_loader, CFG, False)
    assert torch.equal(gathered.images, torch.stack([preprocess(p, CFG) for p in pics])) and gathered.labels == [
        0,
        1,
        2,
    ]
    stream = read_loader(DataLoader(Stream([(x[i], int(y[i])) for i in range(4)]), batch_size=None), CFG, False)
    assert stream.labels == [3, 1, 4, 1] and stream.description.startswith("DataLoader over Stream (4 images)")


def test_a_loader_with_its_own_batch_sampler_is_read_as_it_batches():
    a = _bytes(4)
    ds = TensorDataset(torch.from_numpy(a), torch.tensor([3, 1, 4, 1]))
    for batch_sampler, chosen in [
        ([[2, 0], [3]], [2, 0, 3]),  # any iterable of index lists: batches, though the loader has no batch_size
        (BatchSampler([3, 0], 2, False), [3, 0]),  # a BatchSampler over 2 of the 4 items: those 2 only
    ]:
        data = read_loader(DataLoader(ds, batch_sampler=batch_sampler), CFG, predicted=False)
        assert isinstance(data, TensorImages) and data.labels == [[3, 1, 4, 1][i] for i in chosen]
        assert data.description == f"DataLoader over TensorDataset ({len(chosen)} images), rescaled to [0, 1] (/ 255)"
        np.testing.assert_array_equal(data.images.numpy(), a[chosen])
    subset = DataLoader(ds, batch_sampler=BatchSampler(SubsetRandomSampler([0, 2]), 2, False))
    data = read_loader(subset, CFG, predicted=False)
    assert len(data) == 2 and sorted(data.labels) == [3, 4]


def test_a_gathered_loader_of_paths_decodes_them_like_a_data_set_does(tmp_path):
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(paths[-1])
    want = torch.stack([preprocess(Image.open(p).convert("RGB"), CFG) for p in paths])
    labelled = Items([(str(p), k) for k, p in enumerate(paths)])
    for loader, n in [
        (DataLoader(labelled, batch_size=2, drop_last=True), 2),  # (paths, labels) batches
        (DataLoader(labelled, batch_size=None), 3),  # (path, label) items
    ]:
        data = read_loader(loader, CFG, predicted=False)
        assert isinstance(data, TensorImages) and data.labels == [0, 1, 2][:n]
        assert torch.equal(data.images, want[:n])
    for size in (2, 3):  # bare paths: a batch of two is two images, not (image, label)
        data = read_loader(
            DataLoader(Items(list(map(str, paths))), batch_size=size, drop_last=True), CFG, predicted=False
        )
        assert data.labels == [PREDICTED] * size and torch.equal(data.images, want[:size])
    missing = tmp_path / "gone.png"
    assert _refused(
        read_loader, DataLoader(Items([str(paths[0]), str(missing)]), batch_size=2, drop_last=True), CFG, False
    ) == (f"data batch 0: image {missing} does not exist (or is a link to a missing file)")
    assert _refused(read_loader, DataLoader(Stream([([1, 2], 0)]), batch_size=None), CFG, False) == (
        "data item 0: the image is a list; yield a tensor, a numpy array, a PIL image or a path"
    )
    assert _refused(materialise, iter([({"a": 1}, [0])]), "S", False, batched=True, cfg=CFG) == (
        "data batch 0: the images are a dict; yield a tensor or numpy array of images, or a list of PIL images or paths"
    )


def test_materialise_gathers_items_and_batches_of_every_kind(capsys):
    f = _bytes(4, h=4, w=5).astype(np.float32) / 255  # H, W not 1 or 3: the layout is not ambiguous
    # items (not batched): channel-last arrays and grey images, labels as tensors
    items = [(np.moveaxis(f[i], 0, 2), torch.tensor(i)) for i in range(3)]
    data = materialise(iter(items), "IterableDataset S", False, batched=False, cfg=CFG)
    assert data.description == "IterableDataset S (3 images)" and data.labels == [0, 1, 2]
    np.testing.assert_allclose(data.images.numpy(), f[:3], rtol=0, atol=0)
    assert _notes(capsys) == []
    raw = materialise(iter([torch.from_numpy(_bytes(2))]), "S", False, batched=True, cfg=CFG)
    assert raw.names == ["data[0]", "data[1]"] and raw.labels == [PREDICTED] * 2
    assert raw.description == "S (2 images), rescaled to [0, 1] (/ 255), labels predicted by the model"
    assert _notes(capsys) == [
        "iaside: note: data: S (2 images): rescaled to [0, 1] (/ 255); labels predicted by the model"
    ]
    grey = materialise(iter([f[0, 0], f[1, 0]]), "S", True, batched=False, cfg=CFG)
    assert tuple(grey.images.shape) == (2, 1, 4, 5) and grey.labels == [PREDICTED] * 2
    assert grey.description == "S (2 images), labels predicted by the model"
    assert _notes(capsys) == ["iaside: note: data: S (2 images): labels predicted by the model"]
    # batches as dicts, NHWC, labels replaced by predicted ones
    batches = [
        {"pixel_values": np.moveaxis(f[:2], 1, 3), "target": np.array([5, 6])},
        {"pixel_values": np.moveaxis(f[2:], 1, 3), "target": np.array([7, 8])},
    ]
    data = materialise(iter(batches), "L", True, batched=True, cfg=CFG)
    np.testing.assert_allclose(data.images.numpy(), f, rtol=0, atol=0)
    assert data.labels == [PREDICTED] * 4 and data.labels_kind == "predicted"
    assert _notes(capsys) == [
        "iaside: note: data: L (4 images): given labels replaced by the model's top-1 (labels='predicted')"
    ]
    data = materialise(iter(batches), "L", False, batched=True, cfg=CFG)
    assert data.labels == [5, 6, 7, 8] and data.labels_kind == "given"
    # PIL images, one per item or a list per batch: preprocessed by the config
    pics = [Image.fromarray(np.random.default_rng(k).integers(0, 256, (6, 8, 3), dtype=np.uint8)) for k in range(3)]
    want = torch.stack([preprocess(p, CFG) for p in pics])
    assert torch.equal(materialise(iter([(p, 1) for p in pics]), "P", False, batched=False, cfg=CFG).images, want)
    assert torch.equal(
        materialise(iter([(pics[:2], [1, 2]), (pics[2:], [0])]), "P", False, batched=True, cfg=CFG).images, want
    )


def test_materialise_refusals_name_the_batch_or_item():
    f = torch.from_numpy(_bytes(4)).float() / 255
    x = torch.from_numpy(_bytes(4))
    cases = [
        (
            [(f[:2], torch.tensor([0, 1])), (f[2:, :, :2], torch.tensor([0, 1]))],
            True,
            "data batch 1 is float32 (3, 2, 4) per image but the first is float32 (3, 3, 4); give images of one size and type",
        ),
        (
            [(f[:2], torch.tensor([0, 1])), (x[2:], torch.tensor([0, 1]))],
            True,
            "data batch 1 is uint8 (3, 3, 4) per image but the first is float32 (3, 3, 4); give images of one size and type",
        ),
        (
            [(f[:2], torch.tensor([0, 1])), f[2:]],
            True,
            "data batch 1: some batches have labels and some not; label every image or none",
        ),
        (
            [f[:2], (f[2:], torch.tensor([0, 1]))],
            True,
            "data batch 1: some batches have labels and some not; label every image or none",
        ),
        ([(f[0], 0), f[1]], False, "data item 1: some items have labels and some not; label every image or none"),
        ([f[0]], True, "data batch 0: expected images (B, C, H, W), got shape (3, 3, 4)"),
        ([f[:1, None]], False, "data item 0: expected one image (C, H, W), got shape (1, 1, 3, 3, 4)"),
        ([f[0, 0, 0]], False, "data item 0: expected one image (C, H, W), got shape (4,)"),
        (
            [(f[:2], torch.tensor([0, -1]))],
            True,
            "data batch 0 labels: label -1 at 1 is negative; labels are class indices 0..K-1",
        ),
        (
            [(f[:2], torch.tensor([0]))],
            True,
            "data batch 0 labels: expected 2 class indices (shape (2,)), got shape (1,)",
        ),
        ([(f[0], 0.5)], False, "data item 0: label 0.5 is not an integer class index"),
        (
            [(f[0] * 255, 0)],
            False,
            "data (S (1 images)): float pixel values span [0, 255], outside [0, 1]; they look like 0-255 "
            "values: pass x / 255 (or the uint8 tensor itself)",
        ),
        ([], True, "data: S yielded nothing"),
        ([(f[0], 0, "name")], False, "data item 0 has 3 parts; yield (image, label) or the image alone"),
        ([{"x": f[:2]}], True, "data batch 0 is a dict without an image (image, img, pixel_values, pixels); it has x"),
        (
            [(x[0].to(torch.int32), 0)],
            False,
            "data item 0: pixels must be uint8 (0-255) or float in [0, 1], not int32; convert "
            "them (e.g. x.astype('float32') / 65535 for 16-bit images)",
        ),
    ]
    for items, batched, message in cases:
        assert _refused(materialise, iter(items), "S", False, batched=batched, cfg=CFG) == message


# ---- TensorImages ----------------------------------------------------------------------------


def test_tensor_images_keep_uint8_and_read_it_over_255():
    a = _bytes(3)
    data = TensorImages(torch.from_numpy(a), torch.tensor([2, 0, 1]))
    assert data.images.dtype == torch.uint8 and data.labels == [2, 0, 1] and data.labels_kind == "given"
    assert data.names == ["tensor[0]", "tensor[1]", "tensor[2]"] and data.description == "tensor(3, 3, 3, 4)"
    assert data.class_names is None and len(data) == 3
    item = data[1]
    assert (item.label, item.index, item.name) == (0, 1, "tensor[1]") and item.pixels.dtype == torch.float32
    np.testing.assert_allclose(item.pixels.numpy(), a[1] / 255, rtol=0, atol=1e-7)
    assert torch.equal(data.images, torch.from_numpy(a))  # reading an item leaves the store as it was
    f64 = TensorImages(torch.from_numpy(a / 255), None, ["a", "b", "c"], "mine")
    assert f64.images.dtype == torch.float32 and f64.labels == [PREDICTED] * 3 and f64.labels_kind == "predicted"
    assert f64.names == ["a", "b", "c"] and f64.description == "mine" and f64[2].name == "c"
    grad = TensorImages(torch.rand(2, 1, 2, 2, requires_grad=True))
    assert not grad.images.requires_grad
    assert _refused(TensorImages, torch.zeros(3, 4, 4)) == "images must be (N, C, H, W), got shape (3, 4, 4)"
    assert _refused(TensorImages, torch.zeros(3, 1, 4, 4), torch.tensor([0, 1])) == "2 labels for 3 images"


def test_tensor_fingerprint_is_the_sha256_of_float_pixels_and_labels():
    a = _bytes(3)
    want = hashlib.sha256((a.astype(np.float32) / np.float32(255)).tobytes() + b"[2, 0, 1]").hexdigest()[:16]
    assert TensorImages(torch.from_numpy(a), torch.tensor([2, 0, 1])).fingerprint() == want
    assert TensorImages(torch.from_numpy(a).float() / 255, torch.tensor([2, 0, 1])).fingerprint() == want
    # more images than one hashing chunk (256): still the hash of all the pixels in order
    many = np.random.default_rng(0).integers(0, 256, (300, 1, 1, 2), dtype=np.uint8)
    want = hashlib.sha256((many.astype(np.float32) / np.float32(255)).tobytes() + str([PREDICTED] * 300).encode())
    assert TensorImages(torch.from_numpy(many)).fingerprint() == want.hexdigest()[:16]


def test_tensor_subset_keeps_names_and_labels():
    a = _bytes(4)
    data = TensorImages(torch.from_numpy(a), torch.tensor([5, 6, 7, 8]), ["a", "b", "c", "d"], "four")
    sub = data.subset([3, 1])
    assert sub.labels == [8, 6] and sub.names == ["d", "b"] and sub.description == "four [2 of 4]"
    assert torch.equal(sub.images, torch.from_numpy(a[[3, 1]]))
    assert data.subset(np.array([2, 0], dtype=np.int32)).labels == [7, 5]
    empty = data.subset([])
    assert len(empty) == 0 and empty.labels == [] and tuple(empty.images.shape) == (0, 3, 3, 4)
    predicted = TensorImages(torch.from_numpy(a)).subset(np.array([2]))
    assert predicted.labels == [PREDICTED] and predicted.labels_kind == "predicted" and predicted.names == ["tensor[2]"]


# ---- as_dataset (inputs.py) ------------------------------------------------------------------


def test_arrays_are_read_with_their_layout_and_scale_said_once(capsys):
    a = _bytes(2, h=4, w=5)  # H, W not 1 or 3: the layout is not ambiguous
    data = as_dataset((np.moveaxis(a, 1, 3), [4, 2]), CFG)
    note = "data: numpy array (2, 4, 5, 3) uint8: read as N, H, W, C; rescaled to [0, 1] (/ 255)"
    assert _notes(capsys) == [f"iaside: note: {note}"]
    assert data.description == "numpy array(2, 4, 5, 3) uint8, read as N, H, W, C, rescaled to [0, 1] (/ 255)"
    assert data.labels == [4, 2] and data.names == ["data[0]", "data[1]"] and data.images.dtype == torch.uint8
    np.testing.assert_array_equal(data.images.numpy(), a)
    f = torch.from_numpy(a).float() / 255
    same = as_dataset((f, torch.tensor([4, 2])), CFG)
    assert _notes(capsys) == [] and same.description == "tensor(2, 3, 4, 5) float32" and same.labels == [4, 2]
    one = as_dataset(f[0, 0], CFG)
    assert _notes(capsys) == [
        "iaside: note: data: tensor (4, 5) float32: read as one image H, W; labels predicted by the model "
        "(its top-1 on each clean image)"
    ]
    assert tuple(one.images.shape) == (1, 1, 4, 5) and one.labels == [PREDICTED]
    replaced = as_dataset((f, [4, 2]), CFG, predicted=True)
    assert replaced.labels == [PREDICTED] * 2 and replaced.description == (
        "tensor(2, 3, 4, 5) float32, given labels replaced by the model's top-1 (labels='predicted')"
    )
    assert "data labels: expected 2 class indices" in _refused(as_dataset, (f, [1, 2, 3]), CFG)
    assert _refused(as_dataset, f * 3, CFG).startswith("data (tensor (2, 3, 4, 5) float32): float pixel values span")
    assert _refused(as_dataset, f[None], CFG).startswith(
        "data (tensor (1, 2, 3, 4, 5) float32): expected images (N, C, H, W), (N, H, W, C), (N, H, W) or one image"
    )
    assert _refused(as_dataset, a.astype(np.int16), CFG).startswith(
        "data (numpy array (2, 3, 4, 5) int16): pixels must be uint8 (0-255) or float in [0, 1], not int16;"
    )


def test_pil_images_and_paths_become_an_image_data_set(tmp_path, capsys):
    pics = [Image.fromarray(np.random.default_rng(k).integers(0, 256, (6, 8, 3), dtype=np.uint8)) for k in range(2)]
    pics[1].save(tmp_path / "b.png")
    data = as_dataset(([pics[0], tmp_path / "b.png"], [1, 3]), CFG)
    assert isinstance(data, ImageDataset) and _notes(capsys) == []
    assert data.description == "2 image(s) given to explain()"
    assert [data[i].label for i in (0, 1)] == [1, 3] and [data[i].name for i in (0, 1)] == [
        "data[0]",
        str(tmp_path / "b.png"),
    ]
    assert torch.equal(data[1].pixels, preprocess(pics[1], CFG)) and torch.equal(
        data[0].pixels, preprocess(pics[0], CFG)
    )
    single = as_dataset(pics[0], CFG)
    assert _notes(capsys) == ["iaside: note: data: 1 image(s) without labels: labels predicted by the model"]
    assert len(single) == 1 and single[0].label == PREDICTED
    assert as_dataset(str(tmp_path / "b.png"), CFG)[0].name == str(tmp_path / "b.png")
    listed = as_dataset([pics[0], pics[1], pics[0]], CFG)
    assert len(listed) == 3 and listed[2].label == PREDICTED
    replaced = as_dataset(([pics[0]], [2]), CFG, predicted=True)
    assert replaced[0].label == PREDICTED
    assert _notes(capsys)[-1] == "iaside: note: data: given labels replaced by the model's top-1 (labels='predicted')"
    assert (
        _refused(as_dataset, [pics[0], tmp_path / "none.png"], CFG)
        == f"data[1]: {tmp_path / 'none.png'} is not an image file"
    )
    assert _refused(as_dataset, [pics[0], 7], CFG) == (
        "data[1] is a int; a list holds PIL images or image paths (stack arrays or tensors into one (N, C, H, W) batch instead)"
    )
    assert (
        _refused(as_dataset, ([pics[0]], [-1]), CFG)
        == "data labels: label -1 at 0 is negative; labels are class indices 0..K-1"
    )


def test_as_dataset_dispatches_every_kind():
    x = torch.from_numpy(_bytes(2))
    ours = TensorImages(x)
    assert as_dataset(ours, CFG) is ours
    assert as_dataset(Items([ImageItem(torch.zeros(3, 3, 4), 0, 0, "z")]), CFG).items[0].name == "z"
    wrapped = as_dataset(TensorDataset(x, torch.tensor([1, 0])), CFG)
    assert isinstance(wrapped, DatasetImages) and wrapped[1].label == 0
    assert isinstance(as_dataset(DataLoader(TensorDataset(x)), CFG), DatasetImages)
    streamed = as_dataset(Stream([(x[0], 1), (x[1], 0)]), CFG)
    assert isinstance(streamed, TensorImages) and streamed.labels == [1, 0]
    assert streamed.description.startswith("IterableDataset Stream (2 images)")

    class Sequence:  # not a Dataset, but readable by position
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[i], i

    assert isinstance(as_dataset(Sequence(), CFG), DatasetImages) and as_dataset(Sequence(), CFG)[1].label == 1
    # labels="predicted" reaches every kind of source
    pics = [Image.fromarray(np.random.default_rng(k).integers(0, 256, (6, 8, 3), dtype=np.uint8)) for k in range(2)]
    for source in (
        Items([(p, 1) for p in pics]),
        DataLoader(Items([(p, 1) for p in pics])),
        DataLoader(Items([(x[0], 1)]), batch_size=1, drop_last=True),
        Stream([(p, 1) for p in pics]),
        Sequence(),
    ):
        data = as_dataset(source, CFG, predicted=True)
        assert [data[i].label for i in range(len(data))] == [PREDICTED] * len(data)
        assert [as_dataset(source, CFG)[i].label for i in range(len(data))] != [PREDICTED] * len(data)
    # PIL images from every kind of source are preprocessed by the config
    want = preprocess(pics[1], CFG)
    for source in (
        Items([(p, 1) for p in pics]),
        DataLoader(Items([(p, 1) for p in pics])),
        Stream([(p, 1) for p in pics]),
    ):
        assert torch.equal(as_dataset(source, CFG)[1].pixels, want)

    class Claims0(Dataset):  # says it is empty: refused as empty, even if [0] answers
        def __len__(self):
            return 0

        def __getitem__(self, i):
            return ImageItem(torch.zeros(3, 3, 4), 0, 0, "z")

    assert _refused(as_dataset, Claims0(), CFG) == "data: Dataset Claims0 is empty"
    for bad, message in [
        ([], "data is empty: pass at least one image"),
        (
            {"image": x},
            "data of type dict is not accepted; pass a folder or samples:NAME, PIL images or image paths, a "
            "numpy array or torch tensor of pixels, an (images, labels) pair, a Dataset or a DataLoader",
        ),
        (3.5, "data of type float is not accepted"),
        # three grey images in a list (each could pass for labels): still a list of arrays, refused
        ([np.zeros((4, 5))] * 3, "data[0] is a ndarray; a list holds PIL images or image paths (stack arrays or "),
    ]:
        assert _refused(as_dataset, bad, CFG).startswith(message)


def test_what_counts_as_a_batch_and_as_labels():
    x = torch.zeros(2, 3, 3, 4)
    assert _is_batch(x) and _is_batch(np.zeros(2)) and _is_batch(["a.png", Image.new("L", (1, 1))]) and _is_batch([])
    assert not _is_batch(["a.png", 3]) and not _is_batch(3) and not _is_batch([x])
    assert _is_label_batch(torch.tensor([1, 2])) and _is_label_batch(np.eye(2)) and _is_label_batch([1, "a"])
    assert not _is_label_batch(torch.zeros(2, 2, 2)) and not _is_label_batch([x]) and not _is_label_batch(3)
    assert not _is_label_batch([np.zeros(2)]) and not _is_label_batch((Image.new("L", (1, 1)),))
    assert _yields_items(TensorImages(x)) and not _yields_items(Items([])) and not _yields_items(Items([(x[0], 1)]))
    assert _yields_items(Items([ImageItem(x[0], 0, 0, "a")]))

    class Broken(Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            raise RuntimeError("no")

    assert not _yields_items(Broken())


# ---- resolve_data and find_bad_images --------------------------------------------------------


def test_resolve_data_opens_folders_and_draws_seeded_subsets(tmp_path):
    x = torch.from_numpy(_bytes(6))
    full = resolve_data((x, torch.arange(6)), CFG, ExplainConfig(), None, None)
    assert len(full) == 6 and full.labels == list(range(6))
    many = torch.from_numpy(_bytes(40))  # 5 of 40: an unseeded draw matches with chance 1 in 658008
    drawn = resolve_data((many, torch.arange(40)), CFG, ExplainConfig(samples=5, seed=7), None, None)
    chosen = sorted(np.random.default_rng(7).choice(40, 5, replace=False).tolist())
    assert drawn.labels == chosen and drawn.names == [f"data[{i}]" for i in chosen]
    sub = resolve_data((x, torch.arange(6)), CFG, ExplainConfig(samples=4, seed=7), None, None)
    every = resolve_data((x, torch.arange(6)), CFG, ExplainConfig(samples=6), None, None)
    assert (
        every.labels == list(range(6)) and every.description == "tensor(6, 3, 3, 4) uint8, rescaled to [0, 1] (/ 255)"
    )
    assert sub.description == "tensor(6, 3, 3, 4) uint8, rescaled to [0, 1] (/ 255) [4 of 6]"
    predicted = resolve_data((x, torch.arange(6)), CFG, ExplainConfig(labels="predicted"), None, None)
    assert predicted.labels == [PREDICTED] * 6
    assert _refused(resolve_data, x, CFG, ExplainConfig(), "labels.csv", None) == (
        "labels='labels.csv' labels the images of a folder; with in-memory data pass (images, labels) instead"
    )
    # a folder: class sub-folders, or labels predicted on request
    for k in (0, 2):
        (tmp_path / str(k)).mkdir()
        Image.new("RGB", (5, 4), (10 * k, 0, 0)).save(tmp_path / str(k) / "a.png")
    folder = resolve_data(str(tmp_path), CFG, ExplainConfig(), None, None)
    assert isinstance(folder, ImageDataset) and [folder[i].label for i in range(2)] == [0, 2]
    folder = resolve_data(tmp_path, CFG, ExplainConfig(labels="predicted"), "ignored.csv", None)
    assert [folder[i].label for i in range(2)] == [PREDICTED] * 2
    # the model's class names name the folders; samples and seed reach the folder's subset
    for k, name in enumerate(["cat", "dog", "emu", "fox", "gnu", "hen"]):
        (tmp_path / "named" / name).mkdir(parents=True)
        Image.new("RGB", (5, 4), (10 * k, 0, 0)).save(tmp_path / "named" / name / f"{name}.png")
    classes = ["hen", "gnu", "fox", "emu", "dog", "cat"]
    named = resolve_data(tmp_path / "named", CFG, ExplainConfig(), None, classes)
    assert [named[i].label for i in range(6)] == [5, 4, 3, 2, 1, 0]
    chosen = sorted(np.random.default_rng(3).choice(6, 3, replace=False).tolist())
    assert chosen != sorted(np.random.default_rng(0).choice(6, 3, replace=False).tolist())
    drawn = resolve_data(tmp_path / "named", CFG, ExplainConfig(samples=3, seed=3), None, classes)
    assert [drawn[i].label for i in range(3)] == [5 - i for i in chosen]
    one = resolve_data(str(tmp_path / "2" / "a.png"), CFG, ExplainConfig(), None, None)
    assert len(one) == 1 and one[0].label == PREDICTED


def test_samples_below_one_are_refused_for_every_source(tmp_path):
    x = torch.from_numpy(_bytes(2))
    (tmp_path / "0").mkdir()
    Image.new("RGB", (5, 4)).save(tmp_path / "0" / "a.png")
    for samples in (0, -2):
        message = f"samples={samples}: pass a positive number of images, or leave it out"
        for data in (tmp_path, x, (x, torch.arange(2)), Items([(x[0], 0)]), DataLoader(TensorDataset(x))):
            assert _refused(resolve_data, data, CFG, ExplainConfig(samples=samples), None, None) == message


def test_find_bad_images_names_each_unreadable_one(tmp_path):
    f = torch.from_numpy(_bytes(3)).float() / 255
    data = DatasetImages(Items([(f[0], 0), (f[0] * 2, 1), (f[2], 2)]), CFG)
    assert find_bad_images(data) == {
        1: "data[1]: float pixel values span [0, 2], outside [0, 1]; they look like 0-255 values: pass x / 255 "
        "(or the uint8 tensor itself)"
    }
    assert find_bad_images(DatasetImages(Items([(f[0], 0)]), CFG)) == {}
    all_bad = DatasetImages(Items([(f[0], 0), (f[1], None)]), CFG)
    gone = DatasetImages(Items([(tmp_path / "a.png", 0), (tmp_path / "b.png", 1)]), CFG)
    assert _refused(find_bad_images, gone) == (
        f"all 2 images are unreadable; first: data[0]: image {tmp_path / 'a.png'} does not exist (or is a link to a "
        "missing file)"
    )
    assert find_bad_images(all_bad) == {1: "data[1] has no label but item 0 has one; label every item or none"}
    # decoded in this process by default, in worker processes when asked (their reads are not ours)
    source = Items([(f[0], 0), (f[0] * 2, 1), (f[2], 2)])
    data = DatasetImages(source, CFG)
    reads = source.reads
    assert list(find_bad_images(data)) == [1] and source.reads == reads + 3
    assert list(find_bad_images(data, num_workers=1)) == [1] and source.reads == reads + 3


def test_a_loader_s_path_items_decode_at_the_model_s_channels_and_name_the_item(tmp_path):
    """A (path, label) item of a gathered loader is decoded at the config's channels — for a
    YCbCr TIFF and a grey model, its stored Y plane, not the luma of an RGB image rebuilt from
    it — and a missing path is refused naming the item; samples=1 is one image, not refused."""
    rng = np.random.default_rng(0)
    planes = [Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)) for _ in range(3)]
    Image.merge("YCbCr", planes).save(tmp_path / "y.tif")
    grey = DataConfig(input_size=(16, 16), resize_size=16, mean=(0.0,), std=(1.0,), channels=1)
    data = read_loader(DataLoader(Items([(str(tmp_path / "y.tif"), 0)]), batch_size=None), grey, predicted=False)
    np.testing.assert_array_equal(data.images[0, 0].numpy(), np.asarray(planes[0], dtype=np.float32) / 255)
    rebuilt = np.asarray(Image.merge("YCbCr", planes).convert("RGB").convert("L"), dtype=np.float32) / 255
    assert not np.array_equal(rebuilt, np.asarray(planes[0], dtype=np.float32) / 255)  # precondition: they differ
    missing = tmp_path / "gone.png"
    assert _refused(read_loader, DataLoader(Items([(str(missing), 0)]), batch_size=None), CFG, False) == (
        f"data item 0: image {missing} does not exist (or is a link to a missing file)"
    )
    x = torch.from_numpy(_bytes(3))
    one = resolve_data(x, CFG, ExplainConfig(samples=1, seed=0), None, None)
    assert len(one) == 1
