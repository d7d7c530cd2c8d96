"""The per-image view: its v(S), top-1 and φ equal a direct computation over hand-built
coalition images, the coalition findings follow their definitions, and the command works."""

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from PIL import Image

from iaside.cli import main
from iaside.game import coalition_bits, exact_shapley
from iaside.report.local import LocalExplanation, explain_image, plot_local
from iaside.spectral import band_masks, split_bands

M = 3


def smooth_image(seed: int, size: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 6, 6, generator=g)
    return torch.nn.functional.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)[0]


def direct(model, x: torch.Tensor, fill: torch.Tensor, y: int | None = None):
    """log-softmax (2**M, K) of x_S = b + Σ_{i∈S} band_i(x − b), built here without the engine."""
    masks = band_masks(x.shape[-2], x.shape[-1], M, "linf")
    deltas = split_bands((x - fill)[None].double(), masks)[0]  # (M, C, H, W)
    bits = torch.from_numpy(coalition_bits(M)).double()
    images = fill.double()[None] + torch.einsum("sm,mchw->schw", bits, deltas)
    with torch.no_grad():
        return torch.log_softmax(model(images.float()).double(), dim=1).numpy()


@pytest.fixture
def model():
    return tiny_cnn(n_classes=4, seed=3)


@pytest.mark.parametrize("fill", ["image-mean", "zero"])
def test_matches_a_direct_computation(model, fill):
    x = smooth_image(0)
    exp = explain_image(model, x, bands=M, fill=fill, batch_size=3)
    b = x.mean(dim=(1, 2), keepdim=True).expand_as(x) if fill == "image-mean" else torch.zeros_like(x)
    logsoft = direct(model, x, b)
    y = int(logsoft[-1].argmax())
    assert exp.label == y and not exp.label_given
    assert np.allclose(exp.v_nats, logsoft[:, y], atol=1e-4)
    assert np.array_equal(exp.top1, logsoft.argmax(axis=1))
    assert np.allclose(exp.p_label, np.exp(logsoft[:, y]), atol=1e-4)
    assert np.allclose(exp.phi, exact_shapley(logsoft[:, y]), atol=1e-4)
    assert exp.phi.sum() == pytest.approx(exp.v_nats[-1] - exp.v_nats[0], abs=1e-9)
    assert np.allclose(exp.band_images.sum(axis=0), x.numpy(), atol=1e-5)
    for mask in (0, 5, 7):
        kept = [i for i in range(M) if mask >> i & 1]
        expected = b.numpy() + split_bands((x - b)[None], band_masks(24, 24, M, "linf"))[0, kept].sum(0).numpy()
        assert np.allclose(exp.coalition_image(mask), expected, atol=1e-5)


def test_a_given_label_and_partner_images(model):
    x, partners = smooth_image(1), [smooth_image(2), smooth_image(3)]
    exp = explain_image(model, x, label=2, bands=M, fill_from=partners)
    tables = [direct(model, x, p) for p in partners]
    assert exp.label == 2 and exp.label_given and exp.fill == "partner" and exp.n_partners == 2
    assert np.allclose(exp.v_nats, np.mean([t[:, 2] for t in tables], axis=0), atol=1e-4)
    assert np.array_equal(exp.top1, np.mean(tables, axis=0).argmax(axis=1))


def handmade(top1: list[int], p_top1=None, label=None) -> LocalExplanation:
    """A LocalExplanation whose coalition predictions are given (M = 3, 8 coalitions)."""
    n = len(top1)
    p = np.asarray(p_top1 if p_top1 is not None else np.linspace(0.3, 0.9, n))
    zeros = np.zeros((3, 1, 2, 2))
    return LocalExplanation(
        pixels=np.zeros((1, 2, 2)),
        band_images=zeros,
        label=top1[-1] if label is None else label,
        label_given=False,
        v_nats=np.zeros(n),
        phi=np.zeros(3),
        sid=np.full(3, 1 / 3),
        top1=np.asarray(top1),
        p_top1=p,
        p_label=p,
        fill="zero",
        fill_image=np.zeros((1, 2, 2)),
    )


def test_smallest_keeping_coalition():
    #            s: 0  1  2  3  4  5  6  7
    exp = handmade([9, 1, 5, 5, 1, 5, 5, 5], p_top1=[0.1, 0.2, 0.4, 0.9, 0.7, 0.3, 0.5, 0.8])
    assert exp.smallest_keeping() == 2 and exp.single_flips() == []  # {1}: the only singleton giving 5
    exp = handmade([9, 5, 5, 1, 5, 1, 1, 5], p_top1=[0.1, 0.6, 0.8, 0.9, 0.7, 0.3, 0.5, 0.8])
    assert exp.smallest_keeping() == 2  # {1} beats {0} and {2} on probability
    assert exp.single_flips() == [0, 1, 2]  # removing any one band (6, 5, 3) gives class 1


def test_smallest_flipping_removal():
    # the full image says 5; only dropping {0, 2} (keeping s = 2) or everything changes it
    exp = handmade([9, 5, 7, 5, 5, 5, 5, 5])
    assert exp.smallest_flipping_removal() == 5 and exp.single_flips() == []
    assert handmade([5] * 8).smallest_flipping_removal() is None
    assert handmade([5] * 7 + [4]).smallest_keeping() == 7


def test_plot_local_writes_a_png(model, tmp_path):
    exp = explain_image(model, smooth_image(4), bands=M)
    png = plot_local(exp, tmp_path / "x.png", title="t")
    image = Image.open(tmp_path / "x.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and image.width > 400 and image.height > 400


def test_command(tmp_path, capsys):
    path = tmp_path / "tiny.pt"
    torch.jit.script(tiny_cnn(n_classes=3)).save(str(path))
    image = tmp_path / "photo.png"
    Image.fromarray((smooth_image(5, 40).permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(image)
    folder = tmp_path / "others"
    folder.mkdir()
    for k in range(2):
        Image.fromarray((smooth_image(6 + k, 40).permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
            folder / f"{k}.png"
        )
    out = tmp_path / "view.png"
    args = [
        "explain-image",
        str(image),
        "--model",
        f"torchscript:{path}",
        "--input-size",
        "32",
        "--resize-size",
        "32",
        "--bands",
        str(M),
        "-o",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "phi (nats)" in printed and "smallest" in printed and out.exists()
    assert main([*args, "--fill-from", str(folder), "--partners", "2", "--label", "1"]) == 0
    printed = capsys.readouterr().out
    assert "partner (2 partner images)" in printed and "label y = 1 (given)" in printed
    assert main([args[0], str(tmp_path / "missing.png"), *args[2:]]) == 2
    assert "does not exist" in capsys.readouterr().err
