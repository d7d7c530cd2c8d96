"""Where bf16 drifts from float32: EfficientNet-Lite0's log p(y) on real coalition images.

    python benchmarks/bf16_drift.py [--images 6] [--coalitions 64]

The first ``--images`` bundled ImageNet images (the benchmark's seeded order), each on every
(2**8 / ``--coalitions``)-th coalition of M = 8 with the partner fill, labelled by the clean
float32 top-1. Each variant's log p(y) is compared with float32 eager:
- eager bf16: autocast, batch norm applied after each convolution (what ``--precision bf16`` runs);
- folded bf16: batch norm folded into the convolutions by hand in float32, then autocast
  (weights and bias rounded to bf16 once);
- folded bf16, fp32 bias: the same, the folded bias added in float32 after the convolution;
- compile bf16 / fp32: the engine's ``--optimize compile`` (batch norm folded with its shift
  in float32 by ``iaside.compiled.fold_batch_norm``, then inductor with frozen weights);
- compile bf16, inductor's own folding: the same without the fold pass, so inductor folds the
  batch norms itself and rounds the folded bias to bf16.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

from iaside.runtime import apply_malloc_fix, configure_threads


class _Autocast(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model(x)


class _BiasAfter(nn.Module):
    """A bias-free convolution followed by its bias added in float32."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.bias = conv.bias
        conv.bias = None
        self.conv = conv

    def forward(self, x):
        return self.conv(x).float() + self.bias[None, :, None, None]


def fold_batch_norm(classifier: nn.Module, bias_after: bool) -> nn.Module:
    """A copy of EfficientNet-Lite with every (convolution, batch norm) pair folded in float32."""
    model = copy.deepcopy(classifier)
    net = model.net
    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for block in net._blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    with torch.no_grad():
        for owner, conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale[:, None, None, None])
            bias = bn.bias - bn.running_mean * scale + (conv.bias * scale if conv.bias is not None else 0.0)
            conv.bias = nn.Parameter(bias)
            setattr(owner, bn_name, nn.Identity())
            if bias_after:
                setattr(owner, conv_name, _BiasAfter(conv))
    return model


def main() -> None:
    apply_malloc_fix()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--coalitions", type=int, default=64, help="coalitions per image (a divisor of 256)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    threads = configure_threads()

    from iaside.coalitions import CoalitionSynthesizer
    from iaside.compiled import CompiledModel
    from iaside.data import open_dataset
    from iaside.engine.runner import _Logits
    from iaside.fills import partner_index
    from iaside.game import coalition_bits
    from iaside.models import load_model
    from iaside.spectral import band_masks

    loaded = load_model("efficientnet-lite0")
    model = loaded.model.eval().to(memory_format=torch.channels_last)
    dataset = open_dataset("samples:imagenet", loaded.data_config, samples=20, seed=0)
    synth = CoalitionSynthesizer(band_masks(*loaded.data_config.input_size, 8, "linf"))
    bits = torch.from_numpy(coalition_bits(8)).float()[:: 256 // args.coalitions]
    partner = partner_index(len(dataset), 0)
    images, labels = [], []
    with torch.inference_mode():
        for i in range(args.images):
            prepared = synth.prepare(dataset[i].pixels[None], dataset[int(partner[i])].pixels[None])
            images.append(synth.render(prepared.base[0], prepared.deltas[0], bits))
            labels += [int(model(dataset[i].pixels[None]).argmax())] * len(bits)
    x = torch.cat(images).contiguous(memory_format=torch.channels_last)
    y = torch.tensor(labels)
    bs = args.batch_size

    def logp(forward) -> tuple[torch.Tensor, float]:
        with torch.inference_mode():
            forward(x[:bs])  # warm-up (and compile)
            t0 = time.perf_counter()
            out = torch.cat([forward(x[s : s + bs]).float() for s in range(0, len(x), bs)])
            seconds = time.perf_counter() - t0
        return torch.log_softmax(out, dim=1).gather(1, y[:, None])[:, 0], len(x) / seconds

    reference, rate32 = logp(model)
    variants = {
        "eager bf16": _Autocast(model),
        "folded bf16": _Autocast(fold_batch_norm(model, bias_after=False)),
        "folded bf16, fp32 bias": _Autocast(fold_batch_norm(model, bias_after=True)),
        "compile bf16 (--optimize compile)": CompiledModel(_Logits(model, "cpu", torch.bfloat16)),
        "compile fp32 (--optimize compile)": CompiledModel(_Logits(model, "cpu", None)),
        "compile bf16, inductor's own folding": CompiledModel(_Logits(model, "cpu", torch.bfloat16), fold=False),
    }
    print(
        f"EfficientNet-Lite0, {args.images} images x {len(bits)} coalitions = {len(x)} coalition images, "
        f"batch {bs}, {threads} threads, torch {torch.__version__}\n"
    )
    print("| variant | mean \\|Δ log p(y)\\| | max \\|Δ log p(y)\\| | images/s |")
    print("|---|---|---|---|")
    print(f"| eager fp32 (reference) | 0 | 0 | {rate32:.0f} |")
    for name, forward in variants.items():
        got, rate = logp(forward)
        diff = (got - reference).abs()
        print(f"| {name} | {float(diff.mean()):.4f} | {float(diff.max()):.4f} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
