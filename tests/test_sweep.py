"""iaside sweep: four real models (two CNNs, a vision transformer, one that is killed), each in
its own process; the crash is recorded, the report built, and a rerun does no model twice."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_cnn
from torch import nn

from iaside.cli import main
from iaside.errors import IasideError
from iaside.sweep import SweepModel, check_run_options, read_models


class TinyViT(nn.Module):
    """A real vision transformer at toy size: 8×8 patches of a 32×32 image, a class token,
    learned positions, two pre-norm encoder layers of width 32, a linear head."""

    def __init__(self, n_classes: int = 3, dim: int = 32, patch: int = 8, size: int = 32) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, 2, dim_feedforward=64, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.encoder(tokens))[:, 0])


CRASHING = '''
import os, signal
import torch
from torch import nn


class Killed(nn.Module):
    """Dies as the out-of-memory killer would end it: SIGKILL, no traceback."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, x):
        os.kill(os.getpid(), signal.SIGKILL)
        return self.linear(x.mean((2, 3)))


def build():
    return Killed()
'''


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """Four models: two TorchScript CNNs, a TorchScript ViT, and a module: model that is killed."""
    models = tmp_path / "zoo"
    models.mkdir()
    torch.jit.script(tiny_cnn(n_classes=3, seed=1)).save(str(models / "cnn_a.pt"))
    torch.jit.script(tiny_cnn(n_classes=3, seed=2)).save(str(models / "cnn_b.pt"))
    vit = TinyViT().eval()
    torch.jit.script(vit).save(str(models / "vit.pt"))
    (models / "crashing_model.py").write_text(CRASHING)
    monkeypatch.setenv("PYTHONPATH", f"{models}:{__import__('os').environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("IASIDE_STORE", "off")
    listing = tmp_path / "models.txt"
    listing.write_text(
        "# two CNNs, a vision transformer and a model that dies\n"
        f"torchscript:{models / 'cnn_a.pt'} --name cnn-a\n"
        f"torchscript:{models / 'cnn_b.pt'} --name cnn-b --seed 1\n"
        f"torchscript:{models / 'vit.pt'} --name vit   # a transformer\n"
        "module:crashing_model:build --name killed --mean 0.5,0.5,0.5 --std 0.25,0.25,0.25\n"
    )
    return listing


SWEEP_ARGS = [
    "--run-options",
    "--input-size 32 --resize-size 32 --bands 3 --bootstrap 40",
    "--quiet",
    "--bootstrap",
    "50",
]


def test_sweep_records_the_crash_builds_the_report_and_never_repeats_a_model(tmp_path, zoo, image_folder, capsys):
    out = tmp_path / "sweep"
    table = tmp_path / "numbers.csv"  # robustness numbers the user already has, joined by model name
    table.write_text("model,corruption_acc,clean_acc\ncnn-a,41.0,70.0\ncnn-b,38.0,72.0\nvit,45.0,69.0\n")
    code = main(
        ["sweep", str(zoo), "--data", str(image_folder), "--out", str(out), *SWEEP_ARGS, "--external", str(table)]
    )
    said = capsys.readouterr().out
    assert code == 1  # a model failed
    state = json.loads((out / "sweep.json").read_text())["models"]
    assert [state[m]["status"] for m in ("cnn-a", "cnn-b", "vit", "killed")] == ["done", "done", "done", "failed"]
    assert state["killed"]["returncode"] == -9 and "killed by signal 9" in state["killed"]["error"]
    for name in ("cnn-a", "cnn-b", "vit"):
        result = json.loads((out / "models" / name / "result.json").read_text())
        assert result["data"]["n_images"] == 9 and len(result["v_nats"]) == 8
        assert result["interactions"] and result["band_limited"]
    assert "[4/4] killed: failed" in said and "3 of 4 models finished" in said
    board = (out / "leaderboard.md").read_text()
    assert "failed: iaside: killed by signal 9" in board and board.count("| done |") == 3
    scores = {
        n: json.loads((out / "models" / n / "result.json").read_text())["score"]["value"]
        for n in ("cnn-a", "cnn-b", "vit")
    }
    ranked = [line.split("|")[2].strip() for line in board.splitlines()[2:5]]
    assert ranked == sorted(scores, key=lambda n: -scores[n])
    page = (out / "report.html").read_text()
    assert page.count("Band interactions") == 3 and "vit" in page
    compared = json.loads((out / "compare" / "compare.json").read_text())
    assert {m["model"]: m["corruption_acc"] for m in compared["models"]} == {"cnn-a": 41.0, "cnn-b": 38.0, "vit": 45.0}

    # the rerun: nothing finished is run again, the failure is kept
    stamps = {n: (out / "models" / n / "result.json").stat().st_mtime_ns for n in ("cnn-a", "cnn-b", "vit")}
    code = main(["sweep", str(zoo), "--data", str(image_folder), "--out", str(out), *SWEEP_ARGS])
    said = capsys.readouterr().out
    assert code == 1
    assert said.count("done earlier, skipped") == 3 and "failed earlier" in said
    assert {n: (out / "models" / n / "result.json").stat().st_mtime_ns for n in stamps} == stamps
    again = json.loads((out / "sweep.json").read_text())["models"]
    assert all(again[m]["attempts"] == 1 for m in again)
    assert (out / "models" / "killed" / "log.txt").read_text().count("$ ") == 1  # started once


@pytest.mark.slow  # two more model processes (about 10 s each on a busy 2-core machine)
def test_an_unfinished_model_resumes_from_its_checkpoint(tmp_path, zoo, image_folder, capsys):
    """A model whose process died mid-run (status 'running', a state.npz on disk) is resumed."""
    out = tmp_path / "sweep"
    listing = tmp_path / "one.txt"
    listing.write_text(zoo.read_text().splitlines()[1] + "\n")
    assert main(["sweep", str(listing), "--data", str(image_folder), "--out", str(out), *SWEEP_ARGS]) == 0
    folder = out / "models" / "cnn-a"
    from iaside.engine import EngineState

    state = EngineState.load(folder / "state.npz")
    state.done[:4] = 0
    state.clear_unfinished()
    state.save(folder / "state.npz")
    (folder / "result.json").unlink()
    book = json.loads((out / "sweep.json").read_text())
    book["models"]["cnn-a"]["status"] = "running"
    (out / "sweep.json").write_text(json.dumps(book))
    capsys.readouterr()
    assert main(["sweep", str(listing), "--data", str(image_folder), "--out", str(out), *SWEEP_ARGS]) == 0
    assert "[1/1] cnn-a: resuming I-ASIDE" in capsys.readouterr().out
    result = json.loads((folder / "result.json").read_text())
    assert result["meta"]["images_this_session"] == 4 and result["data"]["n_images"] == 9


def test_models_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "models.txt"
    bad.write_text("torchscript:a.pt\ntorchscript:b.pt --bands three\n")
    with pytest.raises(IasideError, match=r"models.txt:2 \(torchscript:b.pt\)"):
        read_models(bad, check=check_run_options)
    bad.write_text("torchscript:x/a.pt\ntorchscript:y/a.pt\n")
    with pytest.raises(IasideError, match="more than once; add --name"):
        read_models(bad)
    bad.write_text("torchscript:a.pt --out elsewhere\n")
    with pytest.raises(IasideError, match="--out is set by the sweep"):
        read_models(bad, check=check_run_options)
    with pytest.raises(IasideError, match="does not exist"):
        read_models(tmp_path / "missing.txt")


def test_robustness_gets_the_model_options_it_takes():
    m = SweepModel("a", "x", ["--bands", "4", "--input-size", "32", "--clip", "--mean=0.5,0.5,0.5", "--seed", "3"], "")
    assert m.robustness_options() == ["--input-size", "32", "--mean=0.5,0.5,0.5", "--seed", "3"]


def test_run_logged_records_output_exit_code_and_timeout(tmp_path):
    import sys

    from iaside.sweep import run_logged

    code, tail = run_logged(
        [sys.executable, "-c", "print('hello'); import sys; sys.exit(3)"], tmp_path / "log.txt", echo=False
    )
    assert code == 3 and "hello" in tail and "hello" in (tmp_path / "log.txt").read_text()
    code, tail = run_logged(
        [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "log.txt", echo=False, timeout_s=1
    )
    assert code == -9 and "stopped after the --timeout of 1 s" in tail


def test_robustness_stage_gets_its_options_and_runs_once(tmp_path, image_folder):
    """The orchestration alone, with a stand-in interpreter that records its command line and
    writes the files a finished stage leaves (a real tiny result.json; robustness numbers)."""
    import sys

    import iaside
    from iaside.sweep import finish_sweep, run_sweep

    template = tmp_path / "template"
    x = torch.rand((4, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    iaside.explain(
        tiny_cnn(n_classes=3),
        (x, torch.arange(4) % 3),
        bands=3,
        n_bootstrap=20,
        show_progress=False,
        out=template,
        record=False,
    )
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "fake_python.py"
    fake.write_text(f"""import json, shutil, sys
from pathlib import Path
argv = sys.argv[1:]
with open({str(calls)!r}, "a") as fh:
    fh.write(json.dumps(argv) + "\\n")
out = Path(argv[argv.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
if argv[2] == "run":
    for f in Path({str(template)!r}).iterdir():
        if f.is_file():
            shutil.copy(f, out / f.name)
else:
    (out / "robustness.json").write_text(json.dumps({{"mean_error": 0.5}}))
""")
    launcher = tmp_path / "python"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} {fake} "$@"\n')
    launcher.chmod(0o755)
    models = [
        SweepModel("a", "torchscript:a.pt", ["--input-size", "32", "--bands", "3"], "a-line"),
        SweepModel("b", "torchscript:b.pt", ["--seed", "2"], "b-line"),
    ]
    robust = ["--corruptions", "gaussian_noise", "--severities", "1", "--linf-eps", "none", "--l2-eps", "none"]
    said = []
    state = run_sweep(
        models,
        "DATA",
        tmp_path / "sw",
        run_options=["--bootstrap", "20"],
        robustness_options=robust,
        echo=False,
        say=said.append,
        python=str(launcher),
    )
    assert all(state.models[m]["status"] == "done" for m in ("a", "b"))
    argvs = [json.loads(line) for line in calls.read_text().splitlines()]
    assert [a[2] for a in argvs] == ["run", "robustness", "run", "robustness"]
    assert argvs[0][3:] == [
        "--model",
        "torchscript:a.pt",
        "--data",
        "DATA",
        "--bootstrap",
        "20",
        "--input-size",
        "32",
        "--bands",
        "3",
        "--out",
        str(tmp_path / "sw" / "models" / "a"),
    ]
    assert argvs[1][3:] == [
        "--model",
        "torchscript:a.pt",
        "--data",
        "DATA",
        *robust,
        "--input-size",
        "32",
        "--out",
        str(tmp_path / "sw" / "models" / "a"),
    ]
    assert argvs[3][-3:-2] == ["2"] and "--seed" in argvs[3]
    run_sweep(
        models,
        "DATA",
        tmp_path / "sw",
        run_options=["--bootstrap", "20"],
        robustness_options=robust,
        echo=False,
        say=said.append,
        python=str(launcher),
    )
    assert len(calls.read_text().splitlines()) == 4  # nothing started again
    board = finish_sweep(models, tmp_path / "sw", state, say=said.append, n_bootstrap=20)
    assert "leaderboard" in board and "report" in board and "compare" not in board  # stand-in numbers: no comparison
    assert any(line.startswith("no comparison:") and "robustness.json" in line for line in said)
