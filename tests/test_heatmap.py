"""Fourier heat map: the frequency grid and basis, the numbers against a hand computation, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_ARGS

from iaside.cli import main
from iaside.heatmap import fourier_basis, frequency_cells, signs


@pytest.mark.parametrize("h,w", [(8, 8), (6, 10), (7, 5)])
def test_cells_are_one_per_hermitian_pair_and_the_basis_is_orthonormal(h, w):
    cells = frequency_cells(h, w)
    keys = {((u % h), (v % w)) for u, v in cells} | {((-u) % h, (-v) % w) for u, v in cells}
    assert len(keys) == h * w  # every frequency of the grid is a cell or its partner
    basis = fourier_basis(h, w, cells).double().flatten(1)
    np.testing.assert_allclose((basis @ basis.T).numpy(), np.eye(len(cells)), atol=1e-5)  # distinct, unit norm
    for (u, v), image in zip(cells, fourier_basis(h, w, cells).double()):
        spectrum = torch.fft.fft2(image).abs()
        spectrum[u % h, v % w] = 0
        spectrum[(-u) % h, (-v) % w] = 0
        assert float(spectrum.max()) < 1e-4  # all its energy at (u, v) and (−u, −v)


def test_stride_keeps_every_sth_frequency():
    assert sorted(map(tuple, frequency_cells(8, 8, stride=2).tolist())) == sorted(
        [(-4, 0), (0, 0), (2, 0), (-4, 2), (-2, 2), (0, 2), (2, 2), (-4, 4), (0, 4), (2, 4)]
    )
    assert len(frequency_cells(32, 32, stride=4)) == 8 * 5 - 2 * 3  # v = 0 and v = 16 drop u = −12, −8, −4


def test_cli_numbers_match_a_hand_computation_and_the_report_shows_the_map(tmp_path, scripted, image_folder, capsys):
    out = tmp_path / "run"
    assert (
        main(["run", "--model", f"torchscript:{scripted}", "--data", str(image_folder), *TINY_ARGS, "--out", str(out)])
        == 0
    )
    args = [
        "heatmap",
        "--model",
        f"torchscript:{scripted}",
        "--data",
        str(image_folder),
        "--input-size",
        "32",
        "--resize-size",
        "32",
        "--stride",
        "8",
        "--eps",
        "6",
        "--batch-size",
        "5",
        "--quiet",
        "--out",
        str(out),
    ]
    capsys.readouterr()
    assert main(args) == 0
    said = capsys.readouterr().out
    cells = frequency_cells(32, 32, 8)
    assert f"9 images × {len(cells)} frequencies" in said and f"= {9 * len(cells)} forward passes" in said
    summary = json.loads((out / "heatmap.json").read_text())
    assert summary["forward_passes_this_session"] == 9 * len(cells) + 9

    # by hand: the preprocessed images, the model, one cell
    from iaside.config import ExplainConfig
    from iaside.data.resolve import resolve_data
    from iaside.models.registry import resolve_model

    loaded = resolve_model(f"torchscript:{scripted}", None, "cpu", None, {"input_size": (32, 32), "resize_size": 32})
    data = resolve_data(str(image_folder), loaded.data_config, ExplainConfig.build(None), None, None)
    k = 3
    basis = fourier_basis(32, 32, cells[k : k + 1])[0]
    hits, deltas = [], []
    with torch.no_grad():
        for i in range(len(data)):
            item = data[i]
            clean = torch.log_softmax(loaded.model(item.pixels[None]), 1)[0, item.label]
            x = (item.pixels + 6 * signs(0, item.index, 3)[:, None, None] * basis).clamp(0, 1)
            logits = loaded.model(x[None])[0]
            hits.append(int(logits.argmax()) == item.label)
            deltas.append(float(torch.log_softmax(logits, 0)[item.label] - clean))
    assert summary["error_rate"][k] == pytest.approx(1 - np.mean(hits), abs=1e-9)
    assert summary["delta_logp_nats"][k] == pytest.approx(np.mean(deltas), abs=1e-5)
    assert abs(np.mean(deltas)) > 1e-4  # the perturbation moves the model: the check can fail

    # rerun: everything is done, nothing is computed again
    assert main(args) == 0
    assert json.loads((out / "heatmap.json").read_text())["forward_passes_this_session"] == 0
    from iaside.report.html import build_report

    page = build_report([out], max_images=0)
    assert "Fourier heat map" in page and f"{summary['clean_error_rate']:.3f} (clean)" in page


def test_signs_are_seeded_per_image():
    assert torch.equal(signs(0, 3, 3), signs(0, 3, 3))
    assert not all(torch.equal(signs(0, i, 3), signs(0, 0, 3)) for i in range(1, 8))
    assert set(signs(1, 2, 64).tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("h,w,stride", [(8, 8, 1), (8, 8, 2), (7, 5, 1), (224, 224, 32)])
def test_the_map_fills_every_measured_frequency_and_its_partner(h, w, stride):
    from iaside.heatmap import HeatmapState, summarize_heatmap

    cells = frequency_cells(h, w, stride)
    state = HeatmapState.empty(3, len(cells))
    state.done[:] = 1
    state.hit[:] = np.random.default_rng(0).integers(0, 2, state.hit.shape)
    s = summarize_heatmap(state, cells, h, w)
    grid = np.asarray(s["maps"]["error_rate"])
    assert not np.isnan(grid).any() and grid.shape == (len(s["u_values"]), len(s["v_values"]))
    u, v = cells[-1]
    row, col = s["u_values"].index(int(u) - h * (u >= h - h // 2)), s["v_values"].index(int(v) - w * (v >= w - w // 2))
    assert grid[row, col] == pytest.approx(s["error_rate"][-1])


@pytest.mark.parametrize("command", ["heatmap", "cutoffs"])
def test_the_shared_model_options_reach_the_model(tmp_path, scripted, image_folder, command):
    """--data-config (like --num-classes and --outputs) is honoured by the views with their own passes, not dropped."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"input_size": 16, "resize_size": 16, "mean": [0.25] * 3, "std": [0.5] * 3}))
    out = tmp_path / command
    extra = ["--stride", "8"] if command == "heatmap" else ["--cutoffs", "0.5,1.0"]
    args = [
        command,
        "--model",
        f"torchscript:{scripted}",
        "--data",
        str(image_folder),
        "--data-config",
        str(cfg),
        *extra,
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    identity = json.loads((out / f"{command}-run.json").read_text())
    assert identity["data_config"]["input_size"] == [16, 16] and identity["data_config"]["mean"] == [0.25] * 3
