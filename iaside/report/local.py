"""The per-image view: one image's band images, its own φ over bands, and the coalitions that
keep or flip its prediction. The local counterpart of the global SID; 2**M passes per fill.

The coalition passes go through ``Engine`` on a one-image ``TensorImages``. The engine keeps
only log p(y | x_S); to read every coalition's top-1 as well, the model is wrapped in a
pass-through ``_Recorder`` that keeps each forward's logits with a random projection of its
inputs, and each coalition image is matched to its forward by that projection (so whatever
passes the engine reuses or reorders, every coalition gets its own logits). The match is
checked against the engine's own log-probabilities.

Fills for one image (the global default, another image of the data set, needs >= 2 images):
- ``image-mean`` (default): removed bands become the image's own per-channel mean colour. Its
  fill image is constant, so it lives in band 0's DC alone: removing a band removes that
  band's structure and keeps the image's brightness and colour.
- ``zero``: an ideal band-stop; removing band 0 also removes the brightness (the image goes
  towards black), which the model also reacts to.
- ``fill_from`` images (``--fill-from FOLDER``): the partner fill of a global run, averaged
  over those images: v(S) is the mean over partners of log p(y | x_S).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..coalitions import CoalitionSynthesizer
from ..engine import Engine
from ..errors import IasideError
from ..config import DEFAULT_BANDS
from ..fills import Fill, make_fill
from ..game import coalition_bits, exact_shapley
from ..estimators import MAX_EXACT_BANDS
from ..spectral import band_masks
from ..summary import sid_from_phi

IMAGE_FILLS = ("image-mean", "zero")


class ImageMeanFill(Fill):
    """b = the image's own per-channel mean colour (a constant image: band 0's DC only)."""

    name = "image-mean"

    def __call__(self, x, indices, partner=None):
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x).contiguous()


class FixedFill(Fill):
    """b = one given image (C, H, W): a partner from ``--fill-from``."""

    name = "fixed"

    def __init__(self, image: torch.Tensor, seed: int = 0) -> None:
        super().__init__(seed)
        self.image = image

    def __call__(self, x, indices, partner=None):
        return self.image.to(x.device, x.dtype).expand_as(x).contiguous()


class _Recorder(nn.Module):
    """Pass-through wrapper: keeps, per forward, a random projection of each input row
    (float64) and its logits (float32), in call order: ``projections`` (S,), ``logits`` (S, K).

    Both live in buffers preallocated for ``capacity`` rows (grown by doubling when a run needs
    more): thousands of small kept tensors, each allocated after a batch's large temporaries,
    fragment the heap (a 2**16-pass image peaked anywhere between 0.4 and 2 GB that way)."""

    def __init__(self, model: nn.Module, image_shape: Sequence[int], capacity: int = 1, seed: int = 0) -> None:
        super().__init__()
        self.model = model
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("direction", torch.randn(int(np.prod(image_shape)), generator=gen, dtype=torch.float64))
        self._projections = torch.empty(max(int(capacity), 1), dtype=torch.float64)
        self._logits: torch.Tensor | None = None
        self.n_rows = 0

    @property
    def projections(self) -> torch.Tensor:
        return self._projections[: self.n_rows]

    @property
    def logits(self) -> torch.Tensor:
        return self._logits[: self.n_rows]

    def clear(self) -> None:
        self.n_rows = 0

    def forward(self, images: torch.Tensor):
        out = self.model(images)
        logits = out[0] if isinstance(out, (tuple, list)) else getattr(out, "logits", out)
        self._keep(self.project(images), logits.detach().float().cpu())
        return out

    def _keep(self, projections: torch.Tensor, logits: torch.Tensor) -> None:
        end = self.n_rows + len(projections)
        if self._logits is None:
            self._logits = torch.empty((len(self._projections), logits.shape[1]), dtype=torch.float32)
        if end > len(self._projections):
            size = max(end, 2 * len(self._projections))
            self._projections = torch.cat([self.projections, self._projections.new_empty(size - self.n_rows)])
            self._logits = torch.cat([self.logits, self._logits.new_empty((size - self.n_rows, logits.shape[1]))])
        self._projections[self.n_rows:end] = projections
        self._logits[self.n_rows:end] = logits
        self.n_rows = end

    def project(self, images: torch.Tensor) -> torch.Tensor:
        flat = images.detach().reshape(images.shape[0], -1).to(torch.float64)
        return (flat @ self.direction.to(flat.device)).cpu()


@dataclass
class LocalExplanation:
    """One image explained over M bands.

    pixels (C, H, W) in [0, 1]; band_images (M, C, H, W); label: the class y whose log-probability
    is the game (given, or the full image's top-1); v_nats (2**M,) log p(y | x_S) (mean over
    partners); phi (M,) nats; sid (M,); top1 (2**M,) the predicted class of every coalition;
    p_top1 (2**M,) its probability; p_label (2**M,) p(y | x_S); fill_image (C, H, W): the fill b
    (the first partner when there are several); class_names: the model's, or None.
    """

    pixels: np.ndarray
    band_images: np.ndarray
    label: int
    label_given: bool
    v_nats: np.ndarray
    phi: np.ndarray
    sid: np.ndarray
    top1: np.ndarray
    p_top1: np.ndarray
    p_label: np.ndarray
    fill: str
    fill_image: np.ndarray
    partition: str = "linf"
    n_partners: int = 0
    class_names: list[str] | None = field(default=None, repr=False)

    @property
    def n_bands(self) -> int:
        return len(self.phi)

    @property
    def full(self) -> int:
        """Bit mask of the grand coalition (the full image)."""
        return 2**self.n_bands - 1

    def coalition_image(self, mask: int) -> np.ndarray:
        """x_S = b + Σ_{i∈S} (x_i − b_i) for the coalition with bit mask ``mask``, (C, H, W)."""
        from .loading import band_images

        fill_bands = band_images(torch.from_numpy(self.fill_image), self.n_bands, self.partition)
        kept = [i for i in range(self.n_bands) if mask >> i & 1]
        return self.fill_image + (self.band_images[kept] - fill_bands[kept]).sum(axis=0)

    def class_name(self, k: int) -> str:
        names = self.class_names
        return f"{k} ({names[k]})" if names is not None and 0 <= k < len(names) else str(k)

    def smallest_keeping(self) -> int | None:
        """Bit mask of the smallest coalition whose top-1 equals the full image's top-1 (ties:
        the highest probability of that class); None if none does."""
        target = self.top1[self.full]
        bits = coalition_bits(self.n_bands)
        ok = np.flatnonzero(self.top1 == target)
        if ok.size == 0:
            return None
        size = bits[ok].sum(axis=1)
        return int(ok[np.lexsort((-self.p_top1[ok], size))[0]])

    def smallest_flipping_removal(self) -> int | None:
        """Bit mask R of the smallest set of bands whose removal changes the top-1 (the coalition
        kept is N \\ R); None if no removal flips it. Ties: the lowest p(y | x_{N∖R}) when y is the
        full image's top-1, else the most confident new prediction."""
        target = self.top1[self.full]
        bits = coalition_bits(self.n_bands)
        flipped = np.flatnonzero(self.top1 != target)
        if flipped.size == 0:
            return None
        removed = self.full ^ flipped
        size = bits[removed].sum(axis=1)
        p_target = self.p_label if self.label == target else None
        tiebreak = p_target[flipped] if p_target is not None else -self.p_top1[flipped]
        return int(removed[np.lexsort((tiebreak, size))[0]])

    def single_flips(self) -> list[int]:
        """Bands whose removal alone changes the top-1."""
        target = self.top1[self.full]
        return [i for i in range(self.n_bands) if self.top1[self.full ^ (1 << i)] != target]

    def table(self, global_sid: np.ndarray | None = None) -> str:
        """The φ table and the coalition findings, for a terminal."""
        m = self.n_bands
        fill = self.fill + (f" ({self.n_partners} partner images)" if self.n_partners else "")
        origin = "given" if self.label_given else "the full image top-1"
        lines = [f"label y = {self.class_name(self.label)} ({origin}), M = {m}, fill {fill}",
                 f"{'band':>4}  {'phi (nats)':>10}  {'SID':>6}" + ("  global SID" if global_sid is not None else "")]
        for i in range(m):
            lines.append(f"{i:>4}  {self.phi[i]:>+10.4f}  {self.sid[i]:>6.3f}"
                         + (f"  {global_sid[i]:>10.3f}" if global_sid is not None else ""))
        lines.append(f"v(N) − v(∅) = {self.v_nats[-1] - self.v_nats[0]:+.4f} nats = Σφ; "
                     f"p(y | full image) = {self.p_label[-1]:.3f}, p(y | no band) = {self.p_label[0]:.3f}")
        target = int(self.top1[self.full])
        lines.append(f"full image: top-1 {self.class_name(target)} (p = {self.p_top1[self.full]:.3f})")
        keep = self.smallest_keeping()
        if keep is not None:
            lines.append(f"smallest coalition with the same top-1: {_bands(keep, m)} "
                         f"({bin(keep).count('1')} of {m} bands, p = {self.p_top1[keep]:.3f})")
        flips = self.single_flips()
        lines.append("bands whose removal alone flips the top-1: "
                     + (", ".join(f"{i} (-> {self.class_name(int(self.top1[self.full ^ (1 << i)]))})" for i in flips)
                        if flips else "none"))
        removal = self.smallest_flipping_removal()
        if removal is None:
            lines.append("no removal of bands changes the top-1")
        else:
            kept = self.full ^ removal
            lines.append(f"smallest removal that flips the top-1: {_bands(removal, m)} -> "
                         f"{self.class_name(int(self.top1[kept]))} (p = {self.p_top1[kept]:.3f})")
        return "\n".join(lines)


def _bands(mask: int, m: int) -> str:
    return "{" + ", ".join(str(i) for i in range(m) if mask >> i & 1) + "}"


def explain_image(
    model: nn.Module,
    pixels: torch.Tensor,
    *,
    label: int | None = None,
    bands: int = DEFAULT_BANDS,
    partition: str = "linf",
    fill: str = "image-mean",
    fill_from: Sequence[torch.Tensor] = (),
    batch_size: int = 64,
    device: str = "cpu",
    precision: str = "fp32",
    class_names: list[str] | None = None,
) -> LocalExplanation:
    """Exact I-ASIDE of one image (C, H, W) in [0, 1]: 2**M coalition passes per fill image.

    label: the class whose log-probability is the game (default: the full image's top-1).
    fill: 'image-mean' or 'zero', unless ``fill_from`` images (each (C, H, W), same size) are
    given: then v(S) is averaged over them as partners.
    """
    from ..data.tensors import TensorImages
    from .loading import band_images

    if partition not in ("linf", "l2"):
        raise IasideError(f"--partition {partition!r}: the per-image view takes linf or l2")
    if not 2 <= bands <= MAX_EXACT_BANDS:
        raise IasideError(f"--bands {bands}: the per-image view is exact (2**M passes per fill, memory linear in "
                          f"2**M), for 2 to {MAX_EXACT_BANDS} bands")
    if fill not in IMAGE_FILLS:
        raise IasideError(f"--fill {fill!r} is not one of {', '.join(IMAGE_FILLS)} (or give --fill-from FOLDER)")
    pixels = pixels.detach().to(torch.float32).cpu()
    c, h, w = pixels.shape
    for k, other in enumerate(fill_from):
        if tuple(other.shape) != (c, h, w):
            raise IasideError(f"fill image {k} is {tuple(other.shape)}, the image is {(c, h, w)}; "
                              "the --fill-from images go through the same preprocessing, so this should not happen")
    masks = band_masks(h, w, bands, partition)
    synth = CoalitionSynthesizer(masks, "sum", False)
    fills: list[Fill] = [FixedFill(img) for img in fill_from] or [
        ImageMeanFill() if fill == "image-mean" else make_fill("zero")]
    recorder = _Recorder(model, (c, h, w), capacity=2**bands + 1)  # every coalition and the clean pass
    dataset = TensorImages(pixels[None], None if label is None else torch.tensor([int(label)]))
    logsoft_sum, tables = None, []
    y = None
    for f in fills:
        recorder.clear()
        engine = Engine(recorder, synth, f, batch_size=batch_size, device=device, precision=precision,
                        show_progress=False)
        state, _ = engine.run(dataset)
        y = int(state.label[0])
        logits = _match(recorder, synth, f, pixels, masks.shape[0], device)
        rows = torch.log_softmax(logits.double(), dim=1).numpy()
        if not np.allclose(rows[:, y], state.logp_nats[0], atol=1e-3):
            raise RuntimeError("per-image view: the recorded coalition logits do not reproduce the engine's "
                               "log-probabilities; report this as a bug")
        logsoft_sum = rows if logsoft_sum is None else logsoft_sum + rows
        tables.append(state.logp_nats[0])
    x0 = pixels[None]
    first_fill = fills[0](x0, torch.tensor([0]))[0].numpy().astype(np.float64)
    mean_logsoft = logsoft_sum / len(fills)  # (2**M, K)
    v = np.mean(tables, axis=0)
    phi = exact_shapley(v)
    top1 = mean_logsoft.argmax(axis=1)
    return LocalExplanation(
        pixels=pixels.numpy(), band_images=band_images(pixels, bands, partition), label=y,
        label_given=label is not None, v_nats=v, phi=phi, sid=sid_from_phi(phi), top1=top1,
        p_top1=np.exp(mean_logsoft[np.arange(len(top1)), top1]), p_label=np.exp(mean_logsoft[:, y]),
        fill="partner" if fill_from else fill, fill_image=first_fill, partition=partition,
        n_partners=len(fill_from), class_names=class_names,
    )


@torch.inference_mode()
def _match(recorder: _Recorder, synth: CoalitionSynthesizer, fill: Fill, pixels: torch.Tensor, n_bands: int,
           device: str) -> torch.Tensor:
    """The recorded logits of every coalition, (2**M, K), matched by input projection."""
    x = pixels[None].to(device)
    prepared = synth.prepare(x, fill(x, torch.tensor([0])))
    bits = torch.from_numpy(coalition_bits(n_bands)).to(x.device, torch.float32)
    wanted = torch.cat([recorder.project(synth.render(prepared.base[0], prepared.deltas[0], bits[k:k + 32]))
                        for k in range(0, bits.shape[0], 32)])
    return recorder.logits[_nearest(wanted, recorder.projections)]


def _nearest(wanted: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """For each of ``wanted`` (K,), the index of the closest of ``seen`` (S,): sorted search,
    O((K + S) log S) time and O(K + S) memory (a K × S distance table is 32 GiB at M = 16)."""
    order = torch.argsort(seen)
    ranked = seen[order]
    right = torch.searchsorted(ranked, wanted).clamp(max=len(ranked) - 1)
    left = (right - 1).clamp(min=0)
    closer_left = (wanted - ranked[left]).abs() <= (ranked[right] - wanted).abs()
    return order[torch.where(closer_left, left, right)]


def plot_local(exp: LocalExplanation, path=None, title: str = "") -> bytes:
    """PNG of ``local_figure``; writes ``path`` if given."""
    from ..display import _plt

    fig = local_figure(exp, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _plt().close(fig)
    png = buf.getvalue()
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(png)
    return png


def local_figure(exp: LocalExplanation, title: str = ""):
    """The image and its band images (band 0 as it is, the others each with its own contrast
    stretch); φ per band (nats); the smallest coalition that keeps the top-1 and the smallest
    removal that flips it, as images. Returns the Figure."""
    from ..display import _plt, wrap
    from .figures import _band_colours, stretch

    plt = _plt()
    m = exp.n_bands
    n_cols = max(-(-(m + 1) // 2), 4)
    fig = plt.figure(figsize=(2.3 * n_cols, 9.0), dpi=100, layout="constrained")
    grid = fig.add_gridspec(3, n_cols, height_ratios=[1, 1, 1.25])

    def show(ax, img, name):
        if img.ndim == 2:
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(np.transpose(np.clip(img, 0, 1), (1, 2, 0)).squeeze(),
                      cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1)
        ax.set_title(wrap(name, fig, 8, share=0.9 / n_cols), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])

    panels = [("image", exp.pixels), ("band 0", exp.band_images[0])]
    for i in range(1, m):
        shown, gain = stretch(exp.band_images[i])
        panels.append((f"band {i}, stretched ×{gain:.0f}", shown))
    for k, (name, img) in enumerate(panels):
        show(fig.add_subplot(grid[k // n_cols, k % n_cols]), img, name)
    for k in range(len(panels), 2 * n_cols):
        fig.add_subplot(grid[k // n_cols, k % n_cols]).axis("off")

    ax = fig.add_subplot(grid[2, : n_cols - 2])
    x = np.arange(m)
    ax.bar(x, exp.phi, color=_band_colours(m), edgecolor="black", linewidth=0.5)
    ax.axhline(0, color="black", linewidth=0.6)
    for i in range(m):
        ax.annotate(f"{exp.sid[i]:.2f}", (i, exp.phi[i]), textcoords="offset points",
                    xytext=(0, 3 if exp.phi[i] >= 0 else -10), ha="center", fontsize=7)
    ax.set_xticks(x)
    ax.set_xlabel("spectral band (0 = lowest frequency); numbers: this image's SID", fontsize=8)
    ax.set_ylabel("φ of log p(y | x_S) (nats)", fontsize=8)
    ax.set_title(wrap(f"this image's Shapley values, y = {exp.class_name(exp.label)}", fig, 9,
                      share=(n_cols - 2) / n_cols), fontsize=9)
    ax.grid(axis="y", alpha=0.3)

    target = int(exp.top1[exp.full])
    keep = exp.smallest_keeping()
    removal = exp.smallest_flipping_removal()
    shown = [
        (keep, f"keep {_bands(keep, m)}: top-1 {exp.class_name(target)}, p = {exp.p_top1[keep]:.2f}"
         if keep is not None else "no coalition keeps the top-1"),
        (None if removal is None else exp.full ^ removal,
         f"remove {_bands(removal, m)}: top-1 {exp.class_name(int(exp.top1[exp.full ^ removal]))}"
         if removal is not None else "no removal flips the top-1"),
    ]
    for k, (mask, name) in enumerate(shown):
        ax = fig.add_subplot(grid[2, n_cols - 2 + k])
        if mask is None:
            ax.axis("off")
            ax.set_title(wrap(name, fig, 8, share=0.9 / n_cols), fontsize=8)
            continue
        show(ax, exp.coalition_image(mask), name)
    if title:
        fig.suptitle(wrap(title, fig, 10), fontsize=10)
    return fig
