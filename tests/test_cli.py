"""The command line end to end on a tiny real model and tiny images; bad input -> one-line errors."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import TINY_ARGS as TINY
from conftest import declare_preprocessing, tiny_cnn

import iaside
from iaside.cli import main


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_and_show_end_to_end(tmp_path, scripted, image_folder, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(
        ["run", "--model", f"torchscript:{scripted}", "--data", image_folder, *TINY, "--out", out], capsys
    )
    assert code == 0, stdout
    assert "score" in stdout and "bands carry" in stdout
    result = json.loads((out / "result.json").read_text())
    assert result["data"]["n_images"] == 9 and len(result["v_nats"]) == 8
    meta = result["meta"]  # every (image, coalition) is a pass or reused; plus one clean pass per image
    assert meta["forward_passes"] - 9 + meta["reused_coalitions"] == 9 * 8 and meta["reused_coalitions"] >= 9
    assert result["data"]["data_config"]["input_size"] == [32, 32]
    assert (out / "per_image.npz").exists() and (out / "sid.png").exists()
    code, shown, _ = run_cli(["show", out], capsys)
    assert code == 0 and f"{result['score']['value']:.4f}" in shown


def test_paper_preset_and_predicted_labels_from_cli(tmp_path, scripted, image_folder, capsys):
    out = tmp_path / "paper"
    code, _stdout, err = run_cli(
        [
            "run",
            "--model",
            f"torchscript:{scripted}",
            "--data",
            image_folder,
            "--labels",
            "predicted",
            "--preset",
            "paper",
            *TINY,
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    cfg = json.loads((out / "result.json").read_text())["config"]
    assert cfg["preset"] == "paper" and cfg["partition"] == "square" and cfg["synthesis"] == "paper"
    assert cfg["labels"] == "predicted"


def test_console_script_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "iaside", "models"], capture_output=True, text=True)
    assert proc.returncode == 0 and "efficientnet-lite0" in proc.stdout


@pytest.mark.parametrize("case", ["missing", "truncated", "small", "label", "shape", "nan"])
def test_bad_input_gets_one_line_error(case, tmp_path, scripted, image_folder, capsys):
    model, data, extra = f"torchscript:{scripted}", image_folder, []
    if case == "missing":
        data, culprit = tmp_path / "nowhere", "nowhere"
    elif case == "truncated":
        bad = image_folder / "1" / "1.png"
        bad.write_bytes(bad.read_bytes()[:60])
        culprit = "1.png"
    elif case == "small":  # 2M = 16 > 10 pixels: refused for the file, and for the analysed size
        from PIL import Image

        Image.new("RGB", (10, 40)).save(image_folder / "2" / "tiny.png")
        extra, culprit = ["--bands", "8"], "tiny.png"
    elif case == "label":
        (image_folder / "7").mkdir()
        (image_folder / "0" / "0.png").rename(image_folder / "7" / "0.png")
        culprit = "7"
    else:
        net = tiny_cnn(n_classes=3)
        if case == "shape":
            net = torch.nn.Sequential(*list(net)[:2])  # returns feature maps, not (B, K)
        else:
            net[-1].bias.data[:] = float("nan")
        path = declare_preprocessing(tmp_path / f"{case}.pt")
        torch.jit.script(net).save(str(path))
        model, culprit = f"torchscript:{path}", "(B, K)" if case == "shape" else "NaN"
    code, _, err = run_cli(["run", "--model", model, "--data", data, *TINY, *extra, "--out", tmp_path / "o"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iaside: error:") and culprit in lines[0], err


def test_onnx_model_gives_the_same_explanation_as_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    net = tiny_cnn(n_classes=5)
    path = tmp_path / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, torch.zeros(1, 3, 32, 32), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}}
        )
    g = torch.Generator().manual_seed(1)
    data = (torch.rand(6, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 3, 4, 0]))
    cfg = iaside.DataConfig(input_size=(32, 32), resize_size=32, mean=(0.0,) * 3, std=(1.0,) * 3)
    kw = dict(bands=4, show_progress=False, n_bootstrap=0, data_config=cfg)
    via_torch = iaside.explain(net, data, **kw)
    via_onnx = iaside.explain(f"onnx:{path}", data, **kw)
    assert np.allclose(via_onnx.per_image["logp_nats"], via_torch.per_image["logp_nats"], atol=1e-4)
    assert np.allclose(via_onnx.phi.value, via_torch.phi.value, atol=1e-4)


def test_on_bad_image_skip_counts_and_lists(tmp_path, scripted, image_folder, capsys):
    (image_folder / "1" / "broken.png").write_text("not an image")
    (image_folder / "2" / "empty.png").write_bytes(b"")
    args = ["run", "--model", f"torchscript:{scripted}", "--data", image_folder, *TINY]
    code, _, err = run_cli(args + ["--out", tmp_path / "a"], capsys)
    assert code == 2 and ("broken.png" in err or "empty.png" in err)
    code, out, _ = run_cli(args + ["--on-bad-image", "skip", "--out", tmp_path / "b"], capsys)
    assert code == 0
    result = json.loads((tmp_path / "b" / "result.json").read_text())
    assert result["data"]["n_images"] == 9
    assert sorted(s["name"].split("/")[-1] for s in result["data"]["skipped"]) == ["broken.png", "empty.png"]
    assert "skipped" in out and "broken.png" in out


def test_warnings_and_notes_go_through_logging_as_one_line(capsys):
    """The tool's messages are log records of the 'iaside' logger, printed as one line each; users can silence notes."""
    import logging

    from iaside.log import note, warn

    warn("the model's mean/std were guessed")
    note("uint8 pixels were rescaled to [0, 1]")
    assert capsys.readouterr().err.splitlines() == [
        "iaside: warning: the model's mean/std were guessed",
        "iaside: note: uint8 pixels were rescaled to [0, 1]",
    ]
    logger = logging.getLogger("iaside")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        note("hidden")
        assert capsys.readouterr().err == ""
    finally:
        logger.setLevel(level)
