"""External robustness tables joined by model name, and partial correlation given clean accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from scipy import stats

import iaside
from iaside.cli import main
from iaside.errors import IasideError
from iaside.robustness.correlation import correlate, partial_correlate
from iaside.robustness.external import join, read_external


def _residual_r(x, y, z):
    """Hand route: correlate what is left of x and of y after a least-squares line on z."""
    design = np.column_stack([np.ones_like(z), z])
    rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return float(np.corrcoef(rx, ry)[0, 1])


def test_partial_correlation_equals_the_residual_route_and_the_t_test():
    rng = np.random.default_rng(0)
    z = rng.normal(size=12)
    x = z + 0.5 * rng.normal(size=12)
    y = z + 0.3 * x + 0.5 * rng.normal(size=12)
    c = partial_correlate(x, y, z, "pearson", n_bootstrap=300)
    assert c.r == pytest.approx(_residual_r(x, y, z), abs=1e-12)
    t = c.r * np.sqrt((12 - 3) / (1 - c.r**2))
    assert c.p_value == pytest.approx(2 * stats.t.sf(abs(t), 9), rel=1e-12)
    assert c.low < c.r < c.high and c.n == 12
    s = partial_correlate(x, y, z, "spearman", n_bootstrap=0)
    ranks = [stats.rankdata(a) for a in (x, y, z)]
    assert s.r == pytest.approx(_residual_r(*ranks), abs=1e-12)


def test_a_correlation_carried_by_clean_accuracy_vanishes_when_it_is_held_fixed():
    z = np.arange(8, dtype=float)  # clean accuracy drives both
    noise_x = np.array([0.3, -0.2, 0.1, 0.4, -0.3, 0.2, -0.1, -0.4])
    noise_y = np.array([-0.1, 0.3, -0.4, 0.2, 0.1, -0.3, 0.4, -0.2])
    x, y = z + noise_x, 2 * z + noise_y
    assert correlate(x, y, "pearson", n_bootstrap=0).r > 0.98
    partial = partial_correlate(x, y, z, "pearson", n_bootstrap=0)
    assert partial.r == pytest.approx(_residual_r(noise_x, noise_y, z), abs=1e-12)  # what z leaves of the noise
    assert abs(partial.r) < 0.5
    few = partial_correlate(x[:3], y[:3], z[:3], n_bootstrap=0)
    assert np.isnan(few.r) and few.p_method == "n < 4"


def test_read_csv_and_robustbench_model_info(tmp_path):
    table = tmp_path / "numbers.csv"
    table.write_text("model,mce,clean_acc\ncnn-a,0.9,0.71\nCNN_B,1.1,\nother,1.0,0.5\n")
    t = read_external(table)
    assert t.values["cnn-a"] == {"mce": 0.9, "clean_acc": 0.71} and np.isnan(t.values["CNN_B"]["clean_acc"])
    assert t.clean_metric() == "clean_acc"
    columns, unmatched, unused = join(["cnn-a", "cnn-b", "vit"], t)  # cnn-b matches CNN_B ignoring case and '_'
    np.testing.assert_array_equal(columns["mce"][:2], [0.9, 1.1])
    assert np.isnan(columns["mce"][2]) and unmatched == ["vit"] and unused == ["other"]

    folder = tmp_path / "model_info" / "imagenet"
    (folder / "Linf").mkdir(parents=True)
    (folder / "corruptions").mkdir()
    info = {
        "link": "https://example.org",
        "name": "Standardly trained model",
        "authors": "x",
        "additional_data": False,
        "number_forward_passes": 1,
        "dataset": "imagenet",
        "venue": "N/A",
        "architecture": "ResNet-50",
        "eps": "4/255",
        "clean_acc": "76.52",
        "reported": "0.0",
        "autoattack_acc": "0.0",
    }
    (folder / "Linf" / "Standard_R50.json").write_text(json.dumps(info))
    (folder / "corruptions" / "Standard_R50.json").write_text(
        json.dumps(
            {
                **{k: v for k, v in info.items() if k != "autoattack_acc"},
                "eps": None,
                "reported": "",
                "corruptions_acc": "38.12",
            }
        )
    )
    (folder / "Linf" / "Salman2020Do_R50.json").write_text(
        json.dumps({**info, "clean_acc": "64.02", "autoattack_acc": "34.96"})
    )
    rb = read_external(folder)
    assert rb.values["Standard_R50"] == {
        "Linf clean_acc": 76.52,
        "Linf reported": 0.0,
        "Linf autoattack_acc": 0.0,
        "corruptions clean_acc": 76.52,
        "corruptions corruptions_acc": 38.12,
    }
    assert rb.values["Salman2020Do_R50"]["Linf autoattack_acc"] == 34.96
    assert rb.clean_metric() == "Linf clean_acc"


@pytest.mark.parametrize(
    "text,match",
    [
        ("name,mce\na,1\n", "header starting with 'model'"),
        ("model,mce\na,high\n", r"numbers.csv:2 column 'mce': 'high' is not a number"),
        ("model,mce\na,1\na,2\n", "listed twice"),
    ],
)
def test_bad_tables_name_the_problem(tmp_path, text, match):
    table = tmp_path / "numbers.csv"
    table.write_text(text)
    with pytest.raises(IasideError, match=match):
        read_external(table)


@pytest.fixture(scope="module")
def four_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("external")
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(
        torch.rand((6, 3, 5, 5), generator=g), size=(32, 32), mode="bicubic", align_corners=False
    ).clamp(0, 1)
    y = torch.arange(6) % 3
    dirs = []
    for k, name in enumerate(["cnn-a", "cnn-b", "cnn-c", "cnn-d"]):
        net = tiny_cnn(n_classes=3, seed=20 + k)
        with torch.no_grad():
            net[0].weight.mul_(1 + 2 * k)  # models that weigh the bands differently
        iaside.explain(net, (x, y), bands=3, n_bootstrap=50, show_progress=False, out=base / name, record=False)
        dirs.append(base / name)
    return base, dirs


def test_compare_joins_a_csv_by_model_name(four_runs, tmp_path, capsys):
    _base, dirs = four_runs
    table = tmp_path / "leaderboard.csv"
    table.write_text(
        "model,corruption_acc,autoattack_acc,clean_acc\n"
        "CNN-A,41.0,10.5,70.1\ncnn-b,38.5,12.0,72.3\ncnn_c,44.2,9.0,69.0\ncnn-d,36.0,15.5,75.8\n"
        "resnet50,39.0,0.0,76.1\n"
    )
    out = tmp_path / "cmp"
    code = main(["compare", *map(str, dirs), "--external", str(table), "--bootstrap", "200", "--out", str(out)])
    said = capsys.readouterr().out
    assert code == 0
    assert "4 of 4 models matched; 1 rows for other models" in said
    d = json.loads((out / "compare.json").read_text())
    assert [m["model"] for m in d["models"]] == ["cnn-a", "cnn-b", "cnn-c", "cnn-d"]
    scores = np.array([m["score"] for m in d["models"]])
    corruption = np.array([41.0, 38.5, 44.2, 36.0])
    clean = np.array([70.1, 72.3, 69.0, 75.8])
    assert [m["corruption_acc"] for m in d["models"]] == corruption.tolist()
    assert [m["clean_accuracy"] for m in d["models"]] == clean.tolist()  # from the table's clean column
    spearman = next(
        c for c in d["correlations"] if (c["x"], c["y"], c["method"]) == ("score", "corruption_acc", "spearman")
    )
    assert spearman["r"] == pytest.approx(stats.spearmanr(scores, corruption).statistic, abs=1e-12)
    partial = next(
        c
        for c in d["partial_correlations"]
        if (c["x"], c["y"]) == ("score", "corruption_acc") and c["method"].startswith("partial pearson")
    )
    assert partial["r"] == pytest.approx(_residual_r(scores, corruption, clean), abs=1e-9)
    assert not any(c["y"] == "clean_acc" for c in d["partial_correlations"])
    assert "controlling for clean accuracy from clean_acc (external table)" in said
    assert (out / "partial_correlations.csv").exists() and (out / "score_vs_external1.png").exists()


def test_reference_given_a_file_reads_it_as_the_external_table(four_runs, tmp_path, capsys):
    _base, dirs = four_runs
    table = tmp_path / "numbers.csv"
    table.write_text("model,mce\ncnn-a,1.0\ncnn-b,0.9\ncnn-c,1.2\n")
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, dirs), "--reference", str(table), "--bootstrap", "50", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "read as --external" in said and "no row for cnn-d" in said
    d = json.loads((out / "compare.json").read_text())
    assert d["meta"]["clean_accuracy_source"] == "the I-ASIDE runs' clean top-1"
    assert d["models"][3]["mce"] is None  # NaN in JSON: cnn-d has no number, it is left out of the correlations
    assert all(c["n"] == 3 for c in d["correlations"] if c["y"] == "mce")


def test_no_matching_name_is_an_error(four_runs, tmp_path, capsys):
    _base, dirs = four_runs
    table = tmp_path / "numbers.csv"
    table.write_text("model,mce\nresnet,1.0\n")
    assert main(["compare", *map(str, dirs), "--external", str(table), "--out", str(tmp_path / "c")]) == 2
    assert "no model name matches a row" in capsys.readouterr().err
