"""Figures for docs/reliability.md: how exactly resumed, sharded, merged, torchrun and
other-batch-size runs reproduce a single uninterrupted run; peak memory on huge images.

    python tests/measure_reliability.py [--no-lite] [--threads 1]

Models: the tests' tiny CNN saved as TorchScript (24 images of 32×32, M = 5) and, unless
--no-lite or not installed, EfficientNet-Lite0 on the 20 bundled ImageNet images (224×224,
M = 4). Every figure is a max |difference| against one uninterrupted single-process run at
batch size 8 with the same seed; "0" means bit-identical. Prints one markdown table.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def tiny_setup(root: Path) -> tuple[str, str, dict]:
    from conftest import tiny_cnn

    model = root / "tiny.pt"
    torch.jit.script(tiny_cnn(n_classes=3)).save(str(model))
    rng = np.random.default_rng(1)
    for k in range(24):
        (root / "imgs" / str(k % 3)).mkdir(parents=True, exist_ok=True)
        small = (rng.random((6, 6, 3)) * 255).astype(np.uint8)
        Image.fromarray(small).resize((40, 36), Image.BICUBIC).save(root / "imgs" / str(k % 3) / f"{k}.png")
    kw = dict(bands=5, overrides={"input_size": [32, 32], "resize_size": 32}, n_bootstrap=200)
    return f"torchscript:{model}", str(root / "imgs"), kw


def lite_setup() -> tuple[str, str, dict]:
    return "efficientnet-lite0", "samples:imagenet", dict(bands=4, n_bootstrap=200)


def compare(a, b) -> dict[str, float]:
    """max |Δ| of per-image log-probabilities, coalition sums, φ, SID and score between Results."""
    ia, ib = a.per_image, b.per_image
    order_a, order_b = np.argsort(ia["index"]), np.argsort(ib["index"])
    la, lb = ia["logp_nats"][order_a], ib["logp_nats"][order_b]
    return {
        "logp": float(np.abs(la - lb).max()),
        "coalition_sums": float(np.abs(la.sum(0) - lb.sum(0)).max()),
        "phi": float(np.abs(a.phi.value - b.phi.value).max()),
        "sid": float(np.abs(a.sid.value - b.sid.value).max()),
        "score": abs(float(a.score.value) - float(b.score.value)),
    }


def logit_jitter(loaded, dataset, n: int = 16) -> float:
    """max |Δ logit| of the same inputs in batches of 1, 3, 8 versus all n at once."""
    x = torch.stack([dataset[i].pixels for i in range(min(n, len(dataset)))])
    model = loaded.model.eval().to(memory_format=torch.channels_last)
    with torch.inference_mode():
        def logits(b):
            return torch.cat([model(x[i:i + b].contiguous(memory_format=torch.channels_last))
                              for i in range(0, len(x), b)])
        ref = logits(len(x))
        return max(float((logits(b) - ref).abs().max()) for b in (1, 3, 8))


def kill_and_resume(model: str, data: str, kw: dict, root: Path) -> tuple[int, object]:
    """SIGKILL a child run after its first checkpoint with ≥ 4 images, rerun it; (done at kill, Result)."""
    from iaside.engine import EngineState
    from iaside.result import Result

    out = root / "killed"
    spec = json.dumps({"model": model, "data": data, **kw, "batch_size": 8, "out": str(out),
                       "checkpoint_every_s": 0.2, "show_progress": False})
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "IASIDE_STORE": "off",
           "IASIDE_TEST_THROTTLE_S": "0.03"}
    proc = subprocess.Popen([sys.executable, str(HERE / "reliability_child.py"), "explain", spec], env=env)
    while proc.poll() is None:
        path = out / "state.npz"
        if path.exists() and EngineState.load(path).done.sum() >= 4:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    n_done = int(EngineState.load(out / "state.npz").done.sum())
    env["IASIDE_TEST_THROTTLE_S"] = "0"
    subprocess.run([sys.executable, str(HERE / "reliability_child.py"), "explain", spec], env=env, check=True)
    return n_done, Result.load(out)


def sigterm_and_resume(model: str, data: str, kw: dict, root: Path) -> tuple[int, object]:
    """SIGTERM an ``iaside run`` child after a checkpoint with ≥ 4 images (it saves and exits
    143), rerun the same command; (images done when it stopped, Result)."""
    from iaside.engine import EngineState
    from iaside.result import Result

    out = root / "terminated"
    args = ["run", "--model", model, "--data", data, "--bands", str(kw["bands"]), "--bootstrap",
            str(kw["n_bootstrap"]), "--batch-size", "8", "--quiet", "--out", str(out)]
    if "overrides" in kw:
        args += ["--input-size", "32", "--resize-size", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "IASIDE_STORE": "off",
           "IASIDE_TEST_THROTTLE_S": "0.03", "IASIDE_TEST_CHECKPOINT_S": "0.2", "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.Popen([sys.executable, str(HERE / "reliability_child.py"), "cli", *args], env=env,
                            stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        path = out / "state.npz"
        if path.exists() and EngineState.load(path).done.sum() >= 4:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.02)
    err = proc.communicate()[1]
    assert proc.returncode == 143, err[-2000:]
    n_done = int(EngineState.load(out / "state.npz").done.sum())
    env["IASIDE_TEST_THROTTLE_S"] = "0"
    subprocess.run([sys.executable, str(HERE / "reliability_child.py"), "cli", *args], env=env, check=True,
                   capture_output=True)
    return n_done, Result.load(out)


def torchrun(model: str, data: str, kw: dict, out: Path) -> object:
    from iaside.result import Result

    args = ["run", "--model", model, "--data", data, "--bands", str(kw["bands"]), "--bootstrap",
            str(kw["n_bootstrap"]), "--batch-size", "8", "--quiet", "--out", str(out)]
    if "overrides" in kw:
        args += ["--input-size", "32", "--resize-size", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "IASIDE_STORE": "off"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                    "iaside", *args], env=env, check=True, capture_output=True)
    return Result.load(out)


def rss_mib(folder: Path, model: str, root: Path) -> tuple[int, float]:
    """Exit code and peak resident memory (VmHWM, MiB) of ``iaside run`` on ``folder``."""
    peak_file = root / f"peak-{folder.name}.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IASIDE_STORE": "off", "IASIDE_TEST_PEAK_RSS_FILE": str(peak_file)}
    proc = subprocess.run([sys.executable, str(HERE / "reliability_child.py"), "cli", "run", "--model", model,
                           "--data", str(folder), "--input-size", "32", "--resize-size", "32", "--bands", "3",
                           "--bootstrap", "10", "--quiet", "--on-bad-image", "skip",
                           "--out", str(root / f"rss-{folder.name}")], env=env, capture_output=True)
    return proc.returncode, int(peak_file.read_text()) / 1024


def memory_rows(model: str, root: Path) -> list[str]:
    from test_hostile import bilevel_png

    rows = []
    cases = {
        "none (2 small PNGs)": None,
        "20000×20000 1-bit PNG (4.0e8 px, refused)": ("png1", 20000),
        "10000×10000 1-bit PNG (1.0e8 px)": ("png1", 10000),
        "13000×13000 1-bit PNG (1.69e8 px, just under the limit)": ("png1", 13000),
        "13000×13000 RGB JPEG (1.69e8 px)": ("jpeg", 13000),
    }
    for label, case in cases.items():
        folder = root / f"mem{len(rows)}"
        (folder / "0").mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (40, 36), (40 * k, 90, 200)).save(folder / "0" / f"{k}.png")
        if case and case[0] == "png1":
            (folder / "0" / "big.png").write_bytes(bilevel_png(case[1], case[1]))
        elif case:
            Image.new("RGB", (case[1], case[1]), (200, 100, 50)).save(folder / "0" / "big.jpg", quality=50)
        code, peak = rss_mib(folder, model, root)
        rows.append(f"| {label} | exit {code} | {peak:.0f} MiB |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-lite", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    os.environ["IASIDE_STORE"] = "off"
    import conftest  # noqa: F401  (sets 2 threads on import: set ours after it)
    import iaside
    from iaside.data import open_dataset
    from iaside.merge import merge_runs
    from iaside.models import load_model

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="iaside-reliability-"))
    setups = {"tiny CNN": tiny_setup(tmp)}
    lite_ok = importlib.util.find_spec("efficientnet_lite_pytorch") and importlib.util.find_spec("foolbox")
    if not args.no_lite and lite_ok:
        setups["EfficientNet-Lite0"] = lite_setup()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), {os.cpu_count()} cores\n")
    print("| model | comparison | max Δ log p (nats) | max Δ coalition sum | max Δ φ | max Δ SID | Δ score |")
    print("|---|---|---|---|---|---|---|")
    for name, (model, data, kw) in setups.items():
        root = tmp / name.replace(" ", "-")
        root.mkdir()
        base = iaside.explain(model, data, **kw, batch_size=8, show_progress=False, out=root / "single")
        rows = {"same seed, second run": iaside.explain(model, data, **kw, batch_size=8, show_progress=False)}
        for batch in (13, 64, 1000) if name == "tiny CNN" else (13, 64):  # Lite0 at 1000: ~8 GB
            rows[f"batch size {batch} vs 8"] = iaside.explain(model, data, **kw, batch_size=batch, show_progress=False)
        other_threads = 2 if args.threads == 1 else 1
        torch.set_num_threads(other_threads)
        rows[f"{other_threads} intra-op threads vs {args.threads}"] = iaside.explain(
            model, data, **kw, batch_size=8, show_progress=False)
        torch.set_num_threads(args.threads)
        for i in range(3):
            iaside.explain(model, data, **kw, batch_size=8, show_progress=False, shard=(i, 3), out=root / f"s{i}")
        rows["3 shards merged"] = merge_runs([root / f"s{i}" for i in range(3)], root / "merged")
        rows["torchrun 2 gloo processes"] = torchrun(model, data, kw, root / "torchrun")
        if name == "tiny CNN":
            n_done, resumed = kill_and_resume(model, data, kw, root)
            rows[f"SIGKILL after {n_done} images, rerun"] = resumed
            n_done, resumed = sigterm_and_resume(model, data, kw, root)
            rows[f"SIGTERM after {n_done} images (saved, exit 143), rerun"] = resumed
        else:  # a resume from a checkpoint of half the images (what a killed run leaves)
            from iaside.engine import EngineState

            state = EngineState.load(root / "single" / "state.npz")
            state.done[state.done.size // 2:] = 0
            state.save(root / "single" / "state.npz")
            rows["resume from half the images"] = iaside.explain(model, data, **kw, batch_size=8,
                                                                  show_progress=False, out=root / "single")
        for label, result in rows.items():
            d = compare(base, result)
            print(f"| {name} | {label} | {d['logp']:.2g} | {d['coalition_sums']:.2g} | {d['phi']:.2g} "
                  f"| {d['sid']:.2g} | {d['score']:.2g} |")
        loaded = load_model(model, overrides=kw.get("overrides"))
        dataset = open_dataset(data, loaded.data_config, labels="predicted")
        jitter = logit_jitter(loaded, dataset)
        print(f"| {name} | model logits, batches of 1/3/8 vs 16 (jitter) | max Δ logit {jitter:.2g} | | | | |")
    if not args.skip_memory:
        print("\n| extra image in a folder of 2 small PNGs (`--on-bad-image skip`) | outcome | peak RSS |")
        print("|---|---|---|")
        for row in memory_rows(setups["tiny CNN"][0], tmp):
            print(row)
    print(f"\n(work folder {tmp})")


if __name__ == "__main__":
    main()
