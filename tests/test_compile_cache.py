"""The compiled-model cache: a model is compiled once per machine, checked, rebuilt when damaged."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from torch import nn

from iaside.coalitions import CoalitionSynthesizer
from iaside.compile_cache import CompileCache, cache_root, entry_key, model_fingerprint
from iaside.compiled import CompiledModel
from iaside.data.tensors import TensorImages
from iaside.engine import Engine
from iaside.engine.runner import _Logits
from iaside.fills import make_fill
from iaside.spectral import band_masks

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import hashlib, json, sys
import numpy as np, torch
from torch import nn
import iaside

torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(), nn.Linear(8, 5))
with torch.no_grad():
    net[1].running_mean.uniform_(-0.5, 0.5)
    net[1].running_var.uniform_(0.5, 2.0)
x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
# 3 bands, partner fill, batch 4: clean passes of 4 images and model batches of 4, one compiled shape
r = iaside.explain(net.eval(), x, bands=3, batch_size=4, precision="bf16", optimize="compile", n_bootstrap=20,
                   show_progress=False)
logp = np.ascontiguousarray(r.per_image["logp_nats"])
print(json.dumps({"timings": r.meta["timings_s"], "optimize": r.meta["optimize"],
                  "logp": hashlib.sha256(logp.tobytes()).hexdigest(), "score": float(r.score.value).hex(),
                  "sid": [float(v).hex() for v in r.sid.value]}))
"""


def run_child(cache: Path) -> tuple[dict, str]:
    env = {**os.environ, "IASIDE_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_a_second_process_loads_the_compiled_model_and_gives_the_same_numbers(tmp_path):
    first, _first_err = run_child(tmp_path / "cache")
    second, second_err = run_child(tmp_path / "cache")
    compiled = first["optimize"]["compiled"]
    assert first["optimize"]["applied"] == "compile" and compiled["cached"]
    assert (compiled["cache_misses"], compiled["cache_hits"]) == (1, 0)
    assert first["timings"]["compile"] > 0
    assert len(list((tmp_path / "cache" / "compiled").glob("*.pt2"))) == 1
    compiled = second["optimize"]["compiled"]
    assert second["optimize"]["applied"] == "compile"
    assert (compiled["cache_misses"], compiled["cache_hits"]) == (0, 1)
    assert second["timings"]["compile"] == 0.0  # nothing compiled: loaded
    assert second["timings"]["compile_cache_load"] > 0
    assert "compiled-model cache" not in second_err  # no note: the entry was found and agreed with the model
    for key in ("logp", "score", "sid"):
        assert first[key] == second[key], key  # bit-identical


def batch_norm_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


class FakeBuilds:
    """CompileCache.build without compiling: writes a placeholder entry, runs the model eagerly."""

    def __init__(self):
        self.keys = []

    def install(self, monkeypatch) -> "FakeBuilds":
        monkeypatch.setattr(CompileCache, "build", lambda cache, *args: self.build(cache, *args))
        return self

    def build(self, cache, key, module, example, fold):
        self.keys.append(key)
        cache.folder.mkdir(parents=True, exist_ok=True)
        cache.path(key).write_bytes(b"built")
        return module, 0


def compiled_model(tmp_path, net, dtype=None):
    module = _Logits(net, "cpu", dtype)
    return CompiledModel(
        module, cache=CompileCache(tmp_path), fingerprint=model_fingerprint(net), reduced_precision=dtype is not None
    ), module


def test_an_unreadable_entry_is_rebuilt_with_a_note(tmp_path, monkeypatch, capsys):
    builds = FakeBuilds().install(monkeypatch)
    compiled, module = compiled_model(tmp_path, batch_norm_net())
    x = torch.rand(4, 3, 16, 16)
    key = compiled.key(x)
    compiled.cache.folder.mkdir(parents=True)
    compiled.cache.path(key).write_bytes(b"not a package")
    with torch.inference_mode():
        out = compiled(x)
        assert torch.equal(out, module(x))
    assert builds.keys == [key] and (compiled.cache_hits, compiled.cache_misses) == (0, 1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is unreadable" in err and str(compiled.cache.path(key)) in err


def test_an_entry_that_does_not_give_the_models_output_is_rebuilt(tmp_path, monkeypatch, capsys):
    builds = FakeBuilds().install(monkeypatch)
    other = _Logits(batch_norm_net(seed=1), "cpu", None)
    monkeypatch.setattr(CompileCache, "load", lambda self, key: other if self.path(key).is_file() else None)
    compiled, _module = compiled_model(tmp_path, batch_norm_net(), torch.bfloat16)
    x = torch.rand(4, 3, 16, 16)
    compiled.cache.folder.mkdir(parents=True)
    compiled.cache.path(compiled.key(x)).write_bytes(b"another model's package")
    with torch.inference_mode():
        compiled(x)
    assert len(builds.keys) == 1 and compiled.cache_misses == 1
    assert "does not give this model's output; compiling it again" in capsys.readouterr().err


def test_an_agreeing_entry_is_used_without_building(tmp_path, monkeypatch):
    builds = FakeBuilds().install(monkeypatch)
    net = batch_norm_net()
    module = _Logits(net, "cpu", None)
    monkeypatch.setattr(CompileCache, "load", lambda self, key: module if self.path(key).is_file() else None)
    compiled, _ = compiled_model(tmp_path, net)
    x = torch.rand(4, 3, 16, 16)
    with torch.inference_mode():
        compiled(x)  # builds
        again, _ = compiled_model(tmp_path, net)
        again(x)  # loads
    assert len(builds.keys) == 1 and (again.cache_hits, again.cache_misses) == (1, 0)
    assert again.compile_s == 0.0 and again.load_s > 0


def test_the_key_names_every_fact_that_changes_the_compiled_code():
    net = tiny_cnn()
    base = dict(
        fingerprint=model_fingerprint(net),
        shape=(4, 3, 32, 32),
        channels_last=True,
        dtype=torch.bfloat16,
        fold=True,
        device=torch.device("cpu"),
    )
    cache = CompileCache("/nonexistent")
    names = {cache.path(entry_key(**base)).name}
    changes = [
        dict(fingerprint=model_fingerprint(tiny_cnn(seed=1))),
        dict(shape=(8, 3, 32, 32)),
        dict(shape=(4, 3, 64, 64)),
        dict(channels_last=False),
        dict(dtype=None),
        dict(fold=False),
    ]
    for change in changes:
        names.add(cache.path(entry_key(**{**base, **change})).name)
    assert len(names) == 1 + len(changes)
    key = entry_key(**base)
    assert key["torch"] == torch.__version__ and key["device"].startswith("cpu ")
    assert model_fingerprint(tiny_cnn()) == base["fingerprint"]  # same weights, same model


def test_the_cache_folder_follows_iaside_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("IASIDE_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("IASIDE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "iaside"


def engine(net, optimize, cache, n_bands=3):
    return Engine(
        net,
        CoalitionSynthesizer(band_masks(32, 32, n_bands)),
        make_fill("partner", 0),
        batch_size=8,
        optimize=optimize,
        compile_cache=cache,
        show_progress=False,
    )


def test_auto_runs_a_short_run_as_given_and_says_why(tmp_path, capsys):
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    e = engine(batch_norm_net(), "auto", CompileCache(tmp_path))
    state, stats = e.run(TensorImages(x, torch.arange(5) % 5))
    assert e.optimized_as == "none" and "compile" not in stats.seconds
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("iaside: note: --optimize auto: running the model as given")
    assert e.compile_info()["decision"] in err[0]
    plain, _ = engine(batch_norm_net(), "none", None).run(TensorImages(x, torch.arange(5) % 5))
    assert np.array_equal(state.logp_nats, plain.logp_nats)
    assert not (tmp_path / "compiled").exists()


def test_auto_compiles_when_the_cache_holds_the_model(tmp_path, monkeypatch, capsys):
    builds = FakeBuilds().install(monkeypatch)
    net = batch_norm_net()
    module = _Logits(net, "cpu", None)
    monkeypatch.setattr(CompileCache, "load", lambda self, key: module if self.path(key).is_file() else None)
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    first = engine(net, "compile", CompileCache(tmp_path))
    first.run(TensorImages(x, torch.arange(5) % 5))
    assert len(builds.keys) == 2  # the clean pass's shape (4 images) and the model batch's (8)
    capsys.readouterr()
    e = engine(net, "auto", CompileCache(tmp_path))
    e.run(TensorImages(x, torch.arange(5) % 5))
    assert e.optimized_as == "compile" and (e.forward.cache_hits, e.forward.cache_misses) == (2, 0)
    assert "--optimize auto: compiling from the cache" in capsys.readouterr().err


@pytest.mark.parametrize("long_run", [False, True])
def test_auto_weighs_the_passes_against_the_compile_time(tmp_path, monkeypatch, long_run):
    import iaside.engine.runner as engine_module

    monkeypatch.setattr(engine_module, "BUILD_S", 1e-9 if long_run else 1e9)
    FakeBuilds().install(monkeypatch)
    e = engine(batch_norm_net(), "auto", CompileCache(tmp_path))
    e.run(TensorImages(torch.rand(5, 3, 32, 32), torch.arange(5) % 5))
    assert e.optimized_as == ("compile" if long_run else "none")


def test_cli_records_the_effective_precision_and_the_auto_decision(tmp_path, scripted, image_folder, capsys):
    from conftest import TINY_ARGS

    from iaside.cli import main
    from iaside.engine.runner import precision_name, resolve_precision

    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--model",
                f"torchscript:{scripted}",
                "--data",
                str(image_folder),
                *TINY_ARGS,
                "--precision",
                "auto",
                "--optimize",
                "auto",
                "--no-cache",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    effective = precision_name(resolve_precision("auto", torch.device("cpu")))
    assert f"precision: {effective} (--precision auto" in captured.out
    meta = json.loads((out / "result.json").read_text())["meta"]
    assert (meta["precision"], meta["precision_requested"]) == (effective, "auto")
    assert meta["optimize"]["applied"] == "none" and meta["optimize"]["compiled"]["cache"] is None
    assert "--optimize auto: running the model as given" in captured.err and "--no-cache" in captured.err
