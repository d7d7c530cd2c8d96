"""How the SID moves during training, and with label noise (MNIST, the zoo's plain CNN).

    python studies/dynamics.py [--quick] [--docs docs]

1. Checkpoints: the CNN trained for 60 epochs on clean labels and on 40 % noisy labels (long
   enough to fit every noisy label); at steps 0, 5, 10, 20, … and the last, I-ASIDE (M = 8) on the test digits, with test accuracy (true labels)
   and accuracy on the training labels the network was given (how much of the noise it has
   memorised).
2. Label noise: the same CNN trained to the end with 0, 20, 40, 60 and 80 % of its training
   labels replaced by another class; the final SIDs side by side.

Writes runs/dynamics/{checkpoints_noise0,checkpoints_noise40,label_noise}.json and PNGs there
(copied to DOCS/img/dynamics_*.png with --docs).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from iaside import explain
from iaside.config import DataConfig
from iaside.errors import IasideError
from iaside.models import state_fingerprint
from iaside.models.base import Classifier, LoadedModel
from iaside.robustness.views import plot_sid_series
from iaside.robustness import zoo
from iaside.robustness.evaluate import predict
from iaside.runtime import apply_malloc_fix, configure_threads

NOISE_RATES = (0.0, 0.2, 0.4, 0.6, 0.8)
CHECKPOINT_NOISE = (0.0, 0.4)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 epochs, 60 test images, 100 bootstrap resamples")
    p.add_argument("--epochs", type=int, default=60, help="training epochs (default 60: with 40 %% noisy labels "
                   "the CNN fits them all by then, i.e. it has memorised the noise)")
    p.add_argument("--test-images", type=int, default=300)
    p.add_argument("--out", type=Path, default=Path("runs/dynamics"))
    p.add_argument("--docs", type=Path, help="copy the figures to DOCS/img/dynamics_*.png")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def checkpoint_steps(total: int) -> set[int]:
    """0, 5, 10, 20, 40, … doubling, and the last step."""
    steps, s = {5}, 10
    while s < total:
        steps.add(s)
        s *= 2
    return {t for t in steps if t < total} | {total}


def measure(model, x_test, y_test, x_fit, y_fit, bootstrap: int, seed: int) -> dict:
    """I-ASIDE and accuracies of a snapshot of ``model`` (left untouched)."""
    snapshot = copy.deepcopy(model).eval()
    loaded = LoadedModel(snapshot, DataConfig(**zoo.DATA_CONFIG), "module:iaside.robustness.zoo:mnist_cnn",
                         state_fingerprint(snapshot))
    result = explain(loaded, (x_test, y_test), bands=8, n_bootstrap=bootstrap, seed=seed, batch_size=512,
                     show_progress=False)
    return {
        "sid": np.asarray(result.sid.value).tolist(),
        "sid_low": np.asarray(result.sid.low).tolist(), "sid_high": np.asarray(result.sid.high).tolist(),
        "phi": np.asarray(result.phi.value).tolist(),
        "score": float(result.score.value), "score_signed": float(result.score_signed.value),
        "score_signed_low": float(result.score_signed.low), "score_signed_high": float(result.score_signed.high),
        "test_accuracy": float(np.mean(predict(snapshot, x_test, 512) == y_test.numpy())),
        "fit_accuracy": float(np.mean(predict(snapshot, x_fit, 512) == y_fit.numpy())),
    }


def main(argv=None) -> int:
    apply_malloc_fix()
    configure_threads()
    args = parse_args(argv)
    epochs = 2 if args.quick else args.epochs
    n_test = 60 if args.quick else args.test_images
    bootstrap = 100 if args.quick else 1000
    out = args.out / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    (x_tr, y_tr), (x_te, y_te) = zoo.mnist_digits(n_test=1000, seed=args.seed)
    x_te, y_te = x_te[:n_test], y_te[:n_test]
    base = zoo.TrainConfig(arch="cnn", epochs=epochs, seed=args.seed)
    total = epochs * math.ceil(len(y_tr) / base.batch_size)
    fit_rows = slice(0, 1000)  # accuracy on the labels the network is trained on, 1000 training digits
    finals: dict[float, dict] = {}
    t0 = time.perf_counter()

    for rate in NOISE_RATES:
        cfg = replace(base, label_noise=rate)
        y_given = zoo.noisy_labels(y_tr, rate, zoo.MNIST_CLASSES, cfg.seed) if rate > 0 else y_tr
        net = Classifier(zoo.build("cnn"), zoo.DATA_CONFIG["mean"], zoo.DATA_CONFIG["std"], num_classes=10)
        series: list[dict] = []
        track = rate in CHECKPOINT_NOISE

        def on_step(step, model):
            row = {"step": step, **measure(model, x_te, y_te, x_tr[fit_rows], y_given[fit_rows], bootstrap, args.seed)}
            series.append(row)
            log(f"noise {rate:.0%} step {step}: score_signed {row['score_signed']:+.3f}, test acc "
                f"{row['test_accuracy']:.3f}, fit acc {row['fit_accuracy']:.3f}")

        zoo.train(net, x_tr, y_tr, cfg, n_classes=zoo.MNIST_CLASSES, on_step=on_step if track else None,
                  steps_of_interest=checkpoint_steps(total))
        final = series[-1] if track else {"step": total, **measure(net, x_te, y_te, x_tr[fit_rows], y_given[fit_rows],
                                                                    bootstrap, args.seed)}
        finals[rate] = final
        if track:
            name = f"checkpoints_noise{round(100 * rate)}"
            (out / f"{name}.json").write_text(json.dumps({"label_noise": rate, "config": cfg.to_dict(),
                                                           "n_test": n_test, "series": series}, indent=1))
            plot_sid_series([r["step"] for r in series], "training step (symlog)", [r["sid"] for r in series],
                            out / f"dynamics_{name}.png", log_x=True,
                            extras={"score_signed": [r["score_signed"] for r in series],
                                    "test accuracy (true labels)": [r["test_accuracy"] for r in series],
                                    "accuracy on its training labels": [r["fit_accuracy"] for r in series]},
                            title=f"MNIST CNN, {rate:.0%} label noise: SID during training (N={n_test} test digits)")
        log(f"noise {rate:.0%}: final score_signed {final['score_signed']:+.3f}, test acc {final['test_accuracy']:.3f}")

    rates = list(finals)
    (out / "label_noise.json").write_text(json.dumps({"epochs": epochs, "n_test": n_test, "models": [
        {"label_noise": r, **finals[r]} for r in rates]}, indent=1))
    plot_sid_series([100 * r for r in rates], "label noise (% of training labels replaced)",
                    [finals[r]["sid"] for r in rates], out / "dynamics_label_noise.png",
                    extras={"score_signed": [finals[r]["score_signed"] for r in rates],
                            "test accuracy (true labels)": [finals[r]["test_accuracy"] for r in rates],
                            "accuracy on its training labels": [finals[r]["fit_accuracy"] for r in rates]},
                    title=f"MNIST CNN after {epochs} epochs: final SID against label noise (N={n_test})")
    print("\n| label noise | test acc | fit acc | score | score_signed [95% CI] | SID (bands 0-7) |")
    print("|---|---|---|---|---|---|")
    for r in rates:
        f = finals[r]
        print(f"| {r:.0%} | {f['test_accuracy']:.3f} | {f['fit_accuracy']:.3f} | {f['score']:.3f} | "
              f"{f['score_signed']:+.3f} [{f['score_signed_low']:+.3f}, {f['score_signed_high']:+.3f}] | "
              + " ".join(f"{v:.2f}" for v in f["sid"]) + " |")
    if args.docs:
        img = args.docs / "img"
        img.mkdir(parents=True, exist_ok=True)
        for png in out.glob("dynamics_*.png"):
            shutil.copy(png, img / png.name)
        log(f"copied the figures to {img}")
    log(f"done in {time.perf_counter() - t0:.0f} s; results under {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except IasideError as err:
        print(f"dynamics: error: {err}", file=sys.stderr)
        sys.exit(2)
