"""Model output, read in one place: whatever a network returns -> (B, K) float32 class scores."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import IasideError
from ..log import warn

OUTPUTS = ("logits", "probs")
"""What a model returns: logits (any real scores; softmaxed by the engine) or probabilities (their log is taken)."""
TINY = 1e-30


def unpack_scores(out):
    """A network's class scores from its output: a tensor, the first element of a tuple/list, the
    ``logits`` of a dict or Hugging Face ModelOutput (or a dict's only value). Traceable."""
    if isinstance(out, Mapping):
        if "logits" in out:
            return out["logits"]
        if len(out) == 1:
            return next(iter(out.values()))
        raise IasideError(
            f"the model returned a dict with keys {sorted(out)}; it needs a 'logits' entry "
            "(or return the (B, K) class scores)"
        )
    if hasattr(out, "logits") and not isinstance(out, torch.Tensor):
        return out.logits
    if isinstance(out, (tuple, list)) and out:
        return unpack_scores(out[0])
    return out


def as_log_probs(scores: torch.Tensor) -> torch.Tensor:
    """log of probability rows (``--outputs probs``), zeros floored at 1e-30."""
    return torch.log(scores.float().clamp_min(TINY))


def check_scores(out, batch: int, where: str = "the model") -> torch.Tensor:
    """``out`` (already unpacked) as (B, K) float32, or an IasideError saying what came back."""
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != batch:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise IasideError(
            f"{where} returned {shape} for a batch of {batch} images; "
            "expected (B, K) logits — wrap it so forward returns class scores"
        )
    return out.float()


def looks_like_probabilities(scores: torch.Tensor) -> bool:
    """True when every row is non-negative and sums to 1 (a softmax head), K > 1."""
    scores = scores.detach().float()
    return bool(
        scores.shape[1] > 1
        and (scores >= 0).all()
        and torch.allclose(scores.sum(1), torch.ones(len(scores), device=scores.device), atol=1e-3)
    )


def warn_if_probabilities(scores: torch.Tensor, where: str = "the model") -> bool:
    """One warning line when ``scores`` look like probabilities rather than logits; True if so."""
    if not looks_like_probabilities(scores):
        return False
    warn(
        f"{where} returns probabilities (rows ≥ 0 summing to 1), not logits; they are read as logits, which "
        "flattens every log-probability: pass --outputs probs (outputs='probs') to take their log"
    )
    return True
