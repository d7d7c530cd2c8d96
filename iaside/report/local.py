"""The per-image view: one image's band images, its own φ over bands, and the coalitions that
keep or flip its prediction. The local counterpart of the global SID; 2**M passes per fill.

The coalition passes go through ``Engine`` on a one-image ``TensorImages``, with a
``LogSoftmaxRecorder`` beside the game's log p(y | x_S): every coalition's log-probabilities
of every class come back from the same passes, so the top-1 of each coalition is read, not
matched afterwards.

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
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..coalitions import CoalitionSynthesizer
from ..config import DEFAULT_BANDS
from ..engine import Engine, LogSoftmaxRecorder
from ..errors import IasideError
from ..estimators import MAX_EXACT_BANDS
from ..fills import IMAGE_FILLS, Fill, FixedFill, make_image_fill
from ..game import coalition_bits, exact_shapley
from ..spectral import band_masks
from ..summary import sid_from_phi

__all__ = ["IMAGE_FILLS", "LocalExplanation", "explain_image", "local_figure", "plot_local"]


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
        lines = [
            f"label y = {self.class_name(self.label)} ({origin}), M = {m}, fill {fill}",
            f"{'band':>4}  {'phi (nats)':>10}  {'SID':>6}" + ("  global SID" if global_sid is not None else ""),
        ]
        for i in range(m):
            lines.append(
                f"{i:>4}  {self.phi[i]:>+10.4f}  {self.sid[i]:>6.3f}"
                + (f"  {global_sid[i]:>10.3f}" if global_sid is not None else "")
            )
        lines.append(
            f"v(N) − v(∅) = {self.v_nats[-1] - self.v_nats[0]:+.4f} nats = Σφ; "
            f"p(y | full image) = {self.p_label[-1]:.3f}, p(y | no band) = {self.p_label[0]:.3f}"
        )
        target = int(self.top1[self.full])
        lines.append(f"full image: top-1 {self.class_name(target)} (p = {self.p_top1[self.full]:.3f})")
        keep = self.smallest_keeping()
        if keep is not None:
            lines.append(
                f"smallest coalition with the same top-1: {_bands(keep, m)} "
                f"({bin(keep).count('1')} of {m} bands, p = {self.p_top1[keep]:.3f})"
            )
        flips = self.single_flips()
        lines.append(
            "bands whose removal alone flips the top-1: "
            + (
                ", ".join(f"{i} (-> {self.class_name(int(self.top1[self.full ^ (1 << i)]))})" for i in flips)
                if flips
                else "none"
            )
        )
        removal = self.smallest_flipping_removal()
        if removal is None:
            lines.append("no removal of bands changes the top-1")
        else:
            kept = self.full ^ removal
            lines.append(
                f"smallest removal that flips the top-1: {_bands(removal, m)} -> "
                f"{self.class_name(int(self.top1[kept]))} (p = {self.p_top1[kept]:.3f})"
            )
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

    pixels = _checked_image(pixels, bands, partition, fill, fill_from)
    masks = band_masks(pixels.shape[1], pixels.shape[2], bands, partition)
    synth = CoalitionSynthesizer(masks, "sum", False)
    fills: list[Fill] = [FixedFill(img) for img in fill_from] or [make_image_fill(fill)]
    dataset = TensorImages(pixels[None], None if label is None else torch.tensor([int(label)]))
    logsoft_sum: np.ndarray | None = None  # Σ over fills of every coalition's log-probabilities, (2**M, K)
    tables, y = [], 0
    for f in fills:
        every_class = LogSoftmaxRecorder()
        engine = Engine(
            model,
            synth,
            f,
            batch_size=batch_size,
            device=device,
            precision=precision,
            show_progress=False,
            record_top1=False,
            recorders=[every_class],
        )
        state, _ = engine.run(dataset)
        y = int(state.label[0])
        rows = every_class.rows.pop(0).astype(np.float64)
        logsoft_sum = rows if logsoft_sum is None else logsoft_sum + rows
        tables.append(state.logp_nats[0])
    assert logsoft_sum is not None  # fills is never empty
    mean_logsoft = logsoft_sum / len(fills)  # over partners
    v = np.mean(tables, axis=0)
    phi = exact_shapley(v)
    top1 = mean_logsoft.argmax(axis=1)
    return LocalExplanation(
        pixels=pixels.numpy(),
        band_images=band_images(pixels, bands, partition),
        label=y,
        label_given=label is not None,
        v_nats=v,
        phi=phi,
        sid=sid_from_phi(phi),
        top1=top1,
        p_top1=np.exp(mean_logsoft[np.arange(len(top1)), top1]),
        p_label=np.exp(mean_logsoft[:, y]),
        fill="partner" if fill_from else fill,
        fill_image=fills[0](pixels[None], torch.tensor([0]))[0].numpy().astype(np.float64),
        partition=partition,
        n_partners=len(fill_from),
        class_names=class_names,
    )


def _checked_image(
    pixels: torch.Tensor, bands: int, partition: str, fill: str, fill_from: Sequence[torch.Tensor]
) -> torch.Tensor:
    """The image as float32 on the CPU, after checking the view's arguments against it."""
    if partition not in ("linf", "l2"):
        raise IasideError(f"--partition {partition!r}: the per-image view takes linf or l2")
    if not 2 <= bands <= MAX_EXACT_BANDS:
        raise IasideError(
            f"--bands {bands}: the per-image view is exact (2**M passes per fill, memory linear in "
            f"2**M), for 2 to {MAX_EXACT_BANDS} bands"
        )
    make_image_fill(fill)  # refuses a fill the view does not have, naming the ones it has
    pixels = pixels.detach().to(torch.float32).cpu()
    for k, other in enumerate(fill_from):
        if tuple(other.shape) != tuple(pixels.shape):
            raise IasideError(
                f"fill image {k} is {tuple(other.shape)}, the image is {tuple(pixels.shape)}; "
                "the --fill-from images go through the same preprocessing, so this should not happen"
            )
    return pixels


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
    from .figures import stretch

    plt = _plt()
    m = exp.n_bands
    n_cols = max(-(-(m + 1) // 2), 4)
    fig = plt.figure(figsize=(2.3 * n_cols, 9.0), dpi=100, layout="constrained")
    grid = fig.add_gridspec(3, n_cols, height_ratios=[1, 1, 1.25])

    def show(ax, img, name):
        if img.ndim == 2:
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(
                np.transpose(np.clip(img, 0, 1), (1, 2, 0)).squeeze(),
                cmap="gray" if img.shape[0] == 1 else None,
                vmin=0,
                vmax=1,
            )
        ax.set_title(wrap(name, fig, 8, share=0.9 / n_cols), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])

    panels = [("image", exp.pixels), ("band 0", exp.band_images[0])]
    for i in range(1, m):
        stretched, gain = stretch(exp.band_images[i])
        panels.append((f"band {i}, stretched ×{gain:.0f}", stretched))
    for k, (name, img) in enumerate(panels):
        show(fig.add_subplot(grid[k // n_cols, k % n_cols]), img, name)
    for k in range(len(panels), 2 * n_cols):
        fig.add_subplot(grid[k // n_cols, k % n_cols]).axis("off")

    _phi_bars(fig, fig.add_subplot(grid[2, : n_cols - 2]), exp, n_cols)

    target = int(exp.top1[exp.full])
    keep = exp.smallest_keeping()
    removal = exp.smallest_flipping_removal()
    shown = [
        (
            keep,
            f"keep {_bands(keep, m)}: top-1 {exp.class_name(target)}, p = {exp.p_top1[keep]:.2f}"
            if keep is not None
            else "no coalition keeps the top-1",
        ),
        (
            None if removal is None else exp.full ^ removal,
            f"remove {_bands(removal, m)}: top-1 {exp.class_name(int(exp.top1[exp.full ^ removal]))}"
            if removal is not None
            else "no removal flips the top-1",
        ),
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


def _phi_bars(fig, ax, exp: LocalExplanation, n_cols: int) -> None:
    """φ per band (nats) as bars in the band colours, each labelled with its SID."""
    from ..display import wrap
    from .figures import _band_colours

    m = exp.n_bands
    x = np.arange(m)
    ax.bar(x, exp.phi, color=_band_colours(m), edgecolor="black", linewidth=0.5)
    ax.axhline(0, color="black", linewidth=0.6)
    for i in range(m):
        ax.annotate(
            f"{exp.sid[i]:.2f}",
            (i, exp.phi[i]),
            textcoords="offset points",
            xytext=(0, 3 if exp.phi[i] >= 0 else -10),
            ha="center",
            fontsize=7,
        )
    ax.set_xticks(x)
    ax.set_xlabel("spectral band (0 = lowest frequency); numbers: this image's SID", fontsize=8)
    ax.set_ylabel("φ of log p(y | x_S) (nats)", fontsize=8)
    ax.set_title(
        wrap(f"this image's Shapley values, y = {exp.class_name(exp.label)}", fig, 9, share=(n_cols - 2) / n_cols),
        fontsize=9,
    )
    ax.grid(axis="y", alpha=0.3)
