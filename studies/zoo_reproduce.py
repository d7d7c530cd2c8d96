"""Do the zoo's trained weights depend only on their recipe? Retrain models from nothing, in a
fresh process and in the given order, and compare them tensor by tensor with a finished study's.

    IASIDE_THREADS=1 PYTHONPATH=. python studies/zoo_reproduce.py runs/zoo mnist/mlp planted/cnn
    IASIDE_THREADS=1 PYTHONPATH=. python studies/zoo_reproduce.py runs/zoo planted/cnn mnist/mlp

Each model is trained by the study's own ``trained_model`` into an empty temporary folder (so
nothing comes from the cache), with the study's default plan (6 epochs, seed 0). Exit status 0
when every model equals the stored one exactly.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo as study  # studies/zoo.py

from iaside.models import state_fingerprint
from iaside.runtime import apply_malloc_fix, configure_threads


def main(argv: list[str]) -> int:
    apply_malloc_fix()
    configure_threads()
    stored, names = Path(argv[0]), argv[1:]
    plan = study.Plan(study.parse_args([]))
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        for full in names:
            group, name = full.split("/", 1)
            cfg = (study.MNIST_MODELS if group == "mnist" else study.PLANTED_MODELS)[name]
            x_tr, y_tr, _, _, n_classes = study.group_data(group, plan)
            net, seconds = study.trained_model(group, name, cfg, x_tr, y_tr, n_classes, plan, Path(tmp))
            assert seconds > 0, "trained from the cache"
            old = torch.load(study.weights_file(group, name, plan, stored), weights_only=True)
            new = net.net.state_dict()
            equal = old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
            same &= equal
            print(
                f"{full}: retrained in {seconds:.0f} s, fingerprint {state_fingerprint(net.net)}, "
                f"{'identical to' if equal else 'DIFFERENT from'} {study.weights_file(group, name, plan, stored)}"
            )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
