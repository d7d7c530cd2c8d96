"""Installing the extras safely (the pins, the hints, ``iaside constraints``), the public
``iaside.compat`` helper, and the ONNX export the ``onnx`` extra serves."""

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_cnn
from packaging.requirements import Requirement

import iaside
from iaside.cli import main
from iaside.compat import enable_torchvision, import_transformers
from iaside.errors import IasideError
from iaside.install import constraints, pip_hint, shipped_pins

ROOT = Path(__file__).resolve().parents[1]
PIPE = "iaside constraints | pip install --constraint /dev/stdin"


def pins(text: str) -> dict[str, str]:
    """{name: specifier} of a constraints text, every line a valid requirement."""
    reqs = [Requirement(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {r.name: str(r.specifier) for r in reqs}


def test_the_repository_pins_are_the_shipped_pins():
    assert (ROOT / "constraints.txt").read_text() == shipped_pins()
    assert (ROOT / "constraints.txt").resolve() == (ROOT / "iaside" / "constraints.txt").resolve()  # one file
    assert pins(shipped_pins()) == {"torch": "==2.13.0", "torchvision": "==0.28.0", "setuptools": "<81"}
    assert 'iaside = ["constraints.txt"]' in (ROOT / "pyproject.toml").read_text()  # in the wheel


def test_constraints_follow_the_installed_torch():
    assert constraints("2.13.0+cpu") == shipped_pins()  # '==2.13.0' already holds 2.13.0+cpu
    assert pins(constraints("2.5.1+cu121")) == {"torch": "==2.5.1", "torchvision": "==0.20.*", "setuptools": "<81"}
    assert pins(constraints("2.0.1")) == {"torch": "==2.0.1", "torchvision": "==0.15.*", "setuptools": "<81"}
    assert pins(constraints("1.13.1")) == {"torch": "==1.13.1", "setuptools": "<81"}  # no rule known: unpinned
    assert constraints("2.5.1").startswith("# torch 2.5.1 is installed: pinned to it")


def test_constraints_command_prints_the_pins(capsys):
    assert main(["constraints"]) == 0
    installed = torch.__version__.split("+")[0]
    assert pins(capsys.readouterr().out)["torch"] == f"=={installed}"
    assert main(["constraints", "--as-tested"]) == 0
    assert capsys.readouterr().out == shipped_pins()


def test_every_install_hint_carries_the_constraints():
    raw = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "iaside").rglob("*.py")
        if path.name not in ("install.py", "constraints.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "pip install" in line
    ]
    assert raw == []  # every hint is built by pip_hint
    assert pip_hint("iaside[timm]") == f"{PIPE} 'iaside[timm]'"
    assert pip_hint("foolbox==3.3.4", no_deps=True) == f"{PIPE} --no-deps foolbox==3.3.4"


def test_a_missing_extra_names_the_safe_command(monkeypatch):
    import iaside.compat

    real = importlib.util.find_spec
    monkeypatch.setattr(
        iaside.compat.importlib.util, "find_spec", lambda name, *a: None if name == "torchvision" else real(name, *a)
    )
    with pytest.raises(IasideError, match=re.escape(f"torchvision is not installed: {PIPE} 'iaside[torchvision]'")):
        enable_torchvision()


USER_SCRIPT = """
import json
import torch
import iaside.compat
patched = iaside.compat.enable_torchvision()
import timm
import torchvision
import torchvision.transforms.v2
x = torch.rand(2, 3, 32, 32)
print(json.dumps({
    "patched": patched,
    "timm": list(timm.create_model("resnet18", pretrained=False, num_classes=3).eval()(x).shape),
    "torchvision": list(torchvision.models.resnet18(weights=None, num_classes=4).eval()(x).shape),
    "transforms": list(torchvision.transforms.v2.Resize(16)(x).shape),
}))
"""


def fresh_python(code: str, home: Path) -> subprocess.CompletedProcess:
    """A new interpreter with only the repository on its path (its home, caches included, in ``home``)."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300, env=env
    )


def test_a_users_script_imports_torchvision_and_timm_through_compat(tmp_path):
    for module in ("torchvision", "timm"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is not installed: the dev install brings it (make install)")
    bare = fresh_python("import torchvision", tmp_path)
    run = fresh_python(USER_SCRIPT, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.splitlines()[-1])
    # where torchvision fails alone (a CUDA build beside a CPU torch), the helper is what fixes it
    assert out["patched"] == (bare.returncode != 0)
    if bare.returncode != 0:
        assert "torchvision::nms does not exist" in bare.stderr
    assert out == {"patched": out["patched"], "timm": [2, 3], "torchvision": [2, 4], "transforms": [2, 3, 16, 16]}


def test_enable_torchvision_is_idempotent_and_opens_transformers():
    first = enable_torchvision()
    assert enable_torchvision() == first
    transformers = import_transformers()  # imports torchvision itself where it is installed
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=5,
    )
    vit = transformers.ViTForImageClassification(config).eval()
    assert vit(pixel_values=torch.rand(2, 3, 32, 32)).logits.shape == (2, 5)


def test_the_readme_onnx_export_runs_and_explains_like_the_module(tmp_path):
    """torch.onnx.export's default exporter needs onnxscript, which the onnx extra brings."""
    net = tiny_cnn(n_classes=5)
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # raised inside torch.export
        torch.onnx.export(net, (torch.rand(1, 3, 32, 32),), str(path), dynamic_shapes=({0: torch.export.Dim("batch")},))
    g = torch.Generator().manual_seed(1)
    data = (torch.rand(6, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 3, 4, 0]))
    cfg = iaside.DataConfig(input_size=(32, 32), resize_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    kw = dict(bands=4, show_progress=False, n_bootstrap=0, data_config=cfg)
    via_onnx = iaside.explain(f"onnx:{path}", data, **kw)
    via_torch = iaside.explain(net, data, **kw)
    np.testing.assert_allclose(via_onnx.per_image["phi_per_image"], via_torch.per_image["phi_per_image"], atol=1e-4)
