"""What ``iaside.explain`` takes as data: every input kind gives the numbers of the same pixels,
and every bad input is one IasideError naming ``data``."""

import re

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

import iaside
from iaside.config import DataConfig
from iaside.data.inputs import DatasetImages, as_dataset
from iaside.data.tensors import TensorImages
from iaside.errors import IasideError

KW = dict(bands=3, n_bootstrap=0, show_progress=False)
SIZE = 16
CFG16 = DataConfig(input_size=(SIZE, SIZE), resize_size=SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def uint8_images(n=6, seed=0):
    """(n, 3, 16, 16) uint8 pictures spanning 0..255, and labels (n,)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 3, SIZE, SIZE, generator=g) * 255).round().to(torch.uint8)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0, 255
    return x, torch.arange(n) % 5


def phi(result) -> np.ndarray:
    return result.per_image["phi_per_image"]


def explain(data, **kw):
    return iaside.explain(tiny_cnn(), data, **{**KW, **kw})


@pytest.fixture(scope="module")
def reference():
    """φ per image of the uint8 images as floats / 255, labels given."""
    x, y = uint8_images()
    return explain((x.float() / 255, y))


def test_uint8_gives_the_phi_of_the_same_images_as_floats(reference, capsys):
    x, y = uint8_images()
    r = explain((x, y))
    # the wrong reading (0-255 values as they are) moves φ by orders of magnitude more than 1e-6
    np.testing.assert_allclose(phi(r), phi(reference), rtol=0, atol=1e-6)
    np.testing.assert_allclose(r.v_nats, reference.v_nats, rtol=0, atol=1e-6)
    notes = [line for line in capsys.readouterr().err.splitlines() if "/ 255" in line]
    assert len(notes) == 1 and notes[0].startswith("iaside: note: data:")
    assert "rescaled to [0, 1] (/ 255)" in r.data["spec"]


@pytest.mark.parametrize(
    "kind",
    [
        "numpy NHWC uint8",
        "numpy NCHW float",
        "tensor NHWC float",
        "Dataset",
        "Dataset HWC numpy",
        "Dataset dicts",
        "DataLoader",
        "DataLoader shuffled",
        "DataLoader custom collate",
        "IterableDataset",
    ],
)
def test_every_input_kind_gives_the_same_phi(kind, reference):
    x, y = uint8_images()
    xf = x.float() / 255
    data = {
        "numpy NHWC uint8": (x.permute(0, 2, 3, 1).numpy(), y.numpy()),
        "numpy NCHW float": (xf.numpy(), y.tolist()),
        "tensor NHWC float": (xf.permute(0, 2, 3, 1), y),
        "Dataset": TensorDataset(x, y),
        "Dataset HWC numpy": Items([(a.permute(1, 2, 0).numpy(), int(b)) for a, b in zip(x, y)]),
        "Dataset dicts": Items([{"image": a, "label": b} for a, b in zip(xf, y)]),
        "DataLoader": DataLoader(TensorDataset(x, y), batch_size=4),
        "DataLoader shuffled": DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True),
        "DataLoader custom collate": DataLoader(
            TensorDataset(xf, y),
            batch_size=4,
            collate_fn=lambda b: (torch.stack([i for i, _ in b]), torch.stack([t for _, t in b])),
        ),
        "IterableDataset": Stream([(a, int(b)) for a, b in zip(x, y)]),
    }[kind]
    r = explain(data)
    assert r.config["labels"] == "given"
    np.testing.assert_allclose(phi(r), phi(reference), rtol=0, atol=1e-6)


class Items(Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class Table:
    """Sized and indexable, but by column name (like a data frame)."""

    def __len__(self):
        return 2

    def __getitem__(self, key):
        raise KeyError(key)


class Stream(IterableDataset):
    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)


def test_pil_images_paths_and_pil_datasets_are_resized_by_the_data_config(tmp_path, reference):
    x, y = uint8_images()
    pictures = [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in x]
    paths = []
    for k, picture in enumerate(pictures):
        paths.append(tmp_path / f"{k}.png")
        picture.save(paths[-1])
    for data in [
        (pictures, y),
        (paths, y.tolist()),
        ([str(p) for p in paths], y),
        Items(list(zip(pictures, y.tolist()))),
        Items([(str(p), int(b)) for p, b in zip(paths, y)]),
    ]:
        r = explain(data, data_config=CFG16)
        np.testing.assert_allclose(phi(r), phi(reference), rtol=0, atol=1e-6)
    big = [picture.resize((40, 40), Image.BICUBIC) for picture in pictures]
    assert as_dataset(big, CFG16)[0].pixels.shape == (3, SIZE, SIZE)  # resized, then cropped, by CFG16


def test_images_without_labels_use_the_model_prediction_said_once(capsys):
    x, _ = uint8_images()
    model = tiny_cnn()
    with torch.no_grad():
        top1 = model(x.float() / 255).argmax(1)
    expected = explain((x.float() / 255, top1))
    capsys.readouterr()
    for data in [
        x.float() / 255,
        TensorDataset(x),
        DataLoader(TensorDataset(x.float() / 255), batch_size=2),
        [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in x],
    ]:
        r = iaside.explain(model, data, **KW, data_config=CFG16)
        assert r.config["labels"] == "predicted" and r.clean_accuracy is None
        np.testing.assert_allclose(phi(r), phi(expected), rtol=0, atol=1e-6)
        notes = [line for line in capsys.readouterr().err.splitlines() if "predicted by the model" in line]
        assert len(notes) == 1, notes


def test_labels_predicted_replaces_given_labels():
    x, y = uint8_images()
    wrong = (y + 1) % 5
    given = explain((x, wrong))
    predicted = explain((x, wrong), labels="predicted")
    assert predicted.config["labels"] == "predicted"
    assert (predicted.per_image["label"] == predicted.per_image["clean_top1"]).all()
    assert not (given.per_image["label"] == given.per_image["clean_top1"]).all()


def test_layouts_are_read_and_said():
    x, _ = uint8_images(2)
    xf = x.float() / 255
    cases = {
        "nhwc": (xf.permute(0, 2, 3, 1).numpy(), "N, H, W, C", (2, 3, SIZE, SIZE)),
        "one chw": (xf[0], "one image C, H, W", (1, 3, SIZE, SIZE)),
        "one hwc": (xf[0].permute(1, 2, 0).numpy(), "one image H, W, C", (1, 3, SIZE, SIZE)),
        "grey batch": (xf[:, 0].numpy(), "N, H, W (grayscale)", (2, 1, SIZE, SIZE)),
        "one grey": (xf[0, 0], "one image H, W", (1, 1, SIZE, SIZE)),
    }
    for array, layout, shape in cases.values():
        dataset = as_dataset(array, CFG16)
        assert layout in dataset.description
        assert tuple(dataset.images.shape) == shape
    np.testing.assert_array_equal(as_dataset(cases["nhwc"][0], CFG16)[1].pixels.numpy(), xf[1].numpy())


def test_dataloader_over_a_map_dataset_is_read_lazily_and_samples_subset():
    x, y = uint8_images()
    lazy = as_dataset(DataLoader(TensorDataset(x, y), batch_size=4), CFG16)
    assert isinstance(lazy, DatasetImages)
    gathered = as_dataset(DataLoader(TensorDataset(x, y), batch_size=4, drop_last=True), CFG16)
    assert isinstance(gathered, TensorImages) and len(gathered) == 4  # what the loader yields
    assert lazy.fingerprint() == as_dataset(TensorDataset(x.float() / 255, y), CFG16).fingerprint()
    assert lazy.fingerprint() != as_dataset(TensorDataset(x.flip(0), y), CFG16).fingerprint()
    sub = explain(TensorDataset(x, y), samples=3)
    assert sub.data["n_images"] == 3


def test_a_bad_item_of_a_dataset_is_named_or_skipped():
    x, y = uint8_images()
    items = [(a.float() / 255, int(b)) for a, b in zip(x, y)]
    items[2] = (items[2][0] * 255, 2)
    with pytest.raises(IasideError, match=r"data\[2\]: float pixel values span .*--on-bad-image skip"):
        explain(Items(items))
    r = explain(Items(items), on_bad_image="skip")
    assert r.data["n_images"] == 5 and [s["name"] for s in r.data["skipped"]] == ["data[2]"]
    assert "outside [0, 1]" in r.data["skipped"][0]["reason"]


def test_uint8_and_float_fingerprints_agree():
    x, y = uint8_images()
    assert TensorImages(x, y).fingerprint() == TensorImages(x.float() / 255, y).fingerprint()


def bad_inputs():
    x, y = uint8_images(4)
    xf = x.float() / 255
    nan = xf.clone()
    nan[1, 0, 2, 2] = float("nan")
    return {
        "0-255 floats": (x.float(), r"span \[0, 255\].*x / 255"),
        "normalised": ((xf - 0.5) / 0.25, r"span \[-2, 2\].*normalised.*mean"),
        "above 1": (xf * 1.5, r"span \[0, 1\.5\].*outside \[0, 1\]"),
        "NaN": (nan, "NaN"),
        "int16": (x.to(torch.int16), "uint8 .* or float"),
        "5-D": (xf[None], "5 dimensions"),
        "labels count": ((xf, y[:3]), r"expected 4 class indices"),
        "float labels": ((xf, y.float()), "integer class indices"),
        "one-hot labels": ((xf, torch.nn.functional.one_hot(y, 5)), "one-hot"),
        "negative label": ((xf, torch.tensor([0, -1, 2, 3])), "negative"),
        "string labels": ((xf, ["cat", "dog", "cat", "dog"]), "integer class indices"),
        "list of tensors": (list(xf), r"data\[0\] is a Tensor.*stack"),
        "two tensors": ([xf[0], xf[1]], r"data\[0\] is a Tensor.*stack"),
        "not by position": (Table(), r"data: Table cannot be read by position \(data\[0\] raised KeyError"),
        "a dict": ({"image": xf}, "dict is not accepted"),
        "missing file": (["/no/such/image.png"], "not an image file"),
        "empty list": ([], "empty"),
        "a number": (3, "int is not accepted"),
        "item parts": (Items([(xf[0], 0, "x")] * 2), r"data\[0\] has 3 parts"),
        "item types": (Items([(x[0], 0), (xf[1], 1)]), r"data\[1\] is float32 but item 0 is uint8"),
        "item sizes": (Items([(xf[0], 0), (xf[1, :, :8], 1)]), r"data\[1\] has shape"),
        "item labels": (Items([(xf[0], 0), (xf[1], None)]), r"data\[1\] has no label"),
        "item label type": (Items([(xf[0], 0), (xf[1], 0.5)]), r"data\[1\]: label 0.5"),
        "item image type": (Items([(xf[0], 0), ("not a file", 1)]), r"data\[1\]: image not a file does not exist"),
        "item range": (Items([(xf[0], 0), (xf[1] * 255, 1)]), r"data\[1\]: float pixel values span"),
        "dict item": (Items([{"picture": xf[0]}] * 2), "dict without an image"),
        "loader nothing": (DataLoader(Stream([]), batch_size=2), "yielded nothing"),
        "loader mixed labels": (DataLoader(Stream([(xf[0], 0), xf[1]]), batch_size=None), "some items have labels"),
    }


@pytest.mark.parametrize("name", list(bad_inputs()))
def test_bad_input_is_one_line_naming_data(name):
    data, message = bad_inputs()[name]
    with pytest.raises(IasideError, match=message) as err:
        dataset = as_dataset(data, CFG16)
        dataset.fingerprint()  # a data set's items are read here, before the run
        [dataset[i] for i in range(len(dataset))]
    text = str(err.value)
    assert "\n" not in text and re.match(r"data\b", text), text


def test_bad_input_through_explain_names_data():
    x, _ = uint8_images(4)
    with pytest.raises(IasideError, match=r"^data \(tensor \(4, 3, 16, 16\) float32\): float pixel values span"):
        explain(x.float())
    with pytest.raises(IasideError, match=r"labels='labels.csv' labels the images of a folder"):
        explain(x, labels="labels.csv")


@pytest.mark.slow
def test_efficientnet_lite0_gets_the_same_phi_from_every_input_kind():
    """samples:imagenet through the folder path, as PIL images, as a numpy uint8 (N, H, W, C)
    array of the same crops and as a DataLoader of uint8 tensors: φ identical."""
    from iaside.data import open_dataset
    from iaside.models import load_model

    model = load_model("efficientnet-lite0")
    cfg = model.data_config
    folder = open_dataset("samples:imagenet", cfg)
    kw = dict(bands=4, n_bootstrap=0, show_progress=False)
    reference = iaside.explain(model, "samples:imagenet", **kw)
    crops = np.stack(
        [np.rint(folder[i].pixels.permute(1, 2, 0).numpy() * 255).astype(np.uint8) for i in range(len(folder))]
    )
    labels = np.array(folder.labels)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(crops).permute(0, 3, 1, 2), torch.from_numpy(labels)), batch_size=8
    )
    for data in [([Image.open(p) for p in folder.sources], labels.tolist()), (crops, labels), loader]:
        r = iaside.explain(model, data, **kw)
        assert r.clean_accuracy == reference.clean_accuracy == 0.9
        np.testing.assert_allclose(phi(r), phi(reference), rtol=0, atol=1e-6)
