"""PGD adversarial perturbations with the model's own gradients, through torchattacks (docs/method.md §7, §8).

The model is an iaside ``Classifier``: pixels in [0, 1] in, logits out, normalisation inside,
so the attack works in pixel space and ε is in pixel units (ℓ∞: 8/255 is 8 grey levels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import torch
from torch import nn

from ..errors import IasideError

NORMS = ("linf", "l2")
DEFAULT_EPS = {"linf": (1 / 255, 2 / 255, 4 / 255), "l2": (0.25, 0.5, 1.0)}
"""ImageNet-scale defaults (pixel units); small-image studies pass their own."""
DEFAULT_STEPS = 10
STEP_RATIO = 2.5
"""Step size α = 2.5·ε/steps (Madry et al.): enough to reach the boundary of the ball from anywhere."""


@dataclass(frozen=True)
class Attack:
    """A PGD attack: norm 'linf' or 'l2', radius ``eps`` (pixel units), ``steps``, step ``alpha``."""

    norm: str
    eps: float
    steps: int = DEFAULT_STEPS
    alpha: float | None = None

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise IasideError(f"attack norm {self.norm!r} is not one of {', '.join(NORMS)}")
        if not self.eps >= 0:
            raise IasideError(f"attack eps must be >= 0, got {self.eps}")
        if self.steps < 1:
            raise IasideError(f"attack steps must be >= 1, got {self.steps}")

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else STEP_RATIO * self.eps / self.steps

    @property
    def label(self) -> str:
        """'pgd-linf 2/255' or 'pgd-l2 0.5'."""
        return f"pgd-{self.norm} {format_eps(self.eps, self.norm)}"

    def to_dict(self) -> dict:
        return {**asdict(self), "alpha": self.step_size, "label": self.label}


def format_eps(eps: float, norm: str) -> str:
    """ε as k/255 for an ℓ∞ radius of 1 to 16 grey levels (the ImageNet convention), else as a short decimal."""
    k = eps * 255
    if norm == "linf" and 1 <= round(k) <= 16 and abs(k - round(k)) < 1e-9:
        return f"{round(k)}/255"
    return f"{eps:g}"


def parse_eps(text: str) -> tuple[float, ...]:
    """'1/255,2/255,0.03' -> (0.0039…, 0.0078…, 0.03); '' or 'none' -> ()."""
    if text.strip() in ("", "none"):
        return ()
    try:
        return tuple(float(Fraction(part.strip())) for part in text.split(","))
    except (ValueError, ZeroDivisionError):
        raise IasideError(f"expected comma-separated eps values such as 1/255,0.5; got {text!r}") from None


def attacks_from(linf_eps, l2_eps, steps: int = DEFAULT_STEPS) -> list[Attack]:
    """PGD-ℓ∞ at every ``linf_eps`` then PGD-ℓ2 at every ``l2_eps``."""
    return [Attack("linf", e, steps) for e in linf_eps] + [Attack("l2", e, steps) for e in l2_eps]


def _torchattacks():
    try:
        import torchattacks
    except ImportError as err:
        from ..install import pip_hint

        raise IasideError(
            f"adversarial attacks need torchattacks ({err}); {pip_hint('torchattacks==3.5.1', no_deps=True)}"
        ) from err
    return torchattacks


def check_differentiable(model: nn.Module, images: torch.Tensor) -> None:
    """IasideError unless the model's logits have a gradient with respect to its input pixels."""
    if not any(True for _ in model.parameters()):
        raise IasideError(
            f"{getattr(model, 'name', type(model).__name__)} has no torch parameters (an ONNX file?); "
            "adversarial attacks need a differentiable torch model: pass a torch model or --linf-eps none --l2-eps none"
        )
    probe = images[:1].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(probe)
    if not out.requires_grad:
        raise IasideError(
            f"{getattr(model, 'name', type(model).__name__)} gives no gradient with respect to its input; "
            "adversarial attacks need a differentiable model"
        )


def pgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack: Attack,
    *,
    seed: int = 0,
    batch_size: int = 64,
) -> torch.Tensor:
    """Adversarial images, (B, C, H, W) in [0, 1] -> same, within ``attack.eps`` of ``images``.

    Untargeted PGD on the cross-entropy of ``labels`` (B,) int64, random start. The random
    start of batch k is drawn with the torch RNG forked and seeded from (seed, k): repeatable
    for a given batch size, and the caller's RNG state is untouched. torchattacks puts the
    model in eval mode for the attack and restores its mode afterwards.
    """
    if attack.eps == 0:
        return images.clone()
    lib = _torchattacks()
    device = images.device
    make = lib.PGD if attack.norm == "linf" else lib.PGDL2
    atk = make(model, eps=attack.eps, alpha=attack.step_size, steps=attack.steps, random_start=True)
    atk.set_device(device)
    out = torch.empty_like(images)
    for k, start in enumerate(range(0, images.shape[0], batch_size)):
        stop = min(start + batch_size, images.shape[0])
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed * 1_000_003 + k)
            with torch.enable_grad():
                out[start:stop] = atk(images[start:stop], labels[start:stop]).detach()
    return out
