"""A 12-lead ECG drawn on ECG paper, the format clinicians read, with an attribution along each trace.

The page follows the standard printout: 1 mm and 5 mm grid, 25 mm/s, 10 mm/mV, a 1 mV
calibration pulse at the start of each row, leads in a 3 x 4 arrangement (I, aVR, V1, V4 /
II, aVL, V2, V5 / III, aVF, V3, V6), each column showing the next 2.5 s, and a 10 s lead II rhythm
strip below. The attribution is a translucent colour band behind each trace (darker = more), on
one scale for the whole page so leads can be compared; a bar chart beside the page gives each
lead's share of the total.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ecgcnn import atomic  # noqa: E402
from ecgcnn.errors import EcgcnnError  # noqa: E402

MM_PER_S = 25.0
MM_PER_MV = 10.0
COLUMN_S = 2.5
LAYOUT: tuple[tuple[str, ...], ...] = (
    ("I", "AVR", "V1", "V4"),
    ("II", "AVL", "V2", "V5"),
    ("III", "AVF", "V3", "V6"),
)
RHYTHM_LEAD = "II"
ROW_MM = 30.0  # baseline to baseline
CAL_MM = 10.0  # room for the calibration pulse at the start of each row
PAPER_COLOUR = "#fffafa"
MINOR_COLOUR = "#f7cfcf"
MAJOR_COLOUR = "#e58f8f"
TRACE_COLOUR = "#111111"
HEAT_COLOUR = "#2a4bd7"  # blue: stands out against the red grid and the black trace
HEAT_CMAP = LinearSegmentedColormap.from_list(
    "heat", ["#ffffff", "#9fb2f0", HEAT_COLOUR, "#101f6b"]
)
# Warm colours over the grey image (the paper's blue would not stand out on grey).
IMAGE_HEAT_CMAP = LinearSegmentedColormap.from_list("image_heat", ["#fde68a", "#f97316", "#b91c1c"])
METHOD_NAMES = {
    "saliency": "saliency (|gradient|)",
    "integrated-gradients": "integrated gradients (|attribution|)",
    "gradcam": "Grad-CAM, last conv layer",
}
DISCLAIMER = "research tool, not a diagnosis"


def display_lead(name: str) -> str:
    """AVR -> aVR (the way leads are printed)."""
    return "a" + name[1:] if name.upper() in ("AVR", "AVL", "AVF") else name


def smooth_magnitude(attribution: np.ndarray, fs: float, window_s: float = 0.04) -> np.ndarray:
    """|attribution| averaged over ~40 ms: raw gradients flicker sample to sample."""
    mag = np.abs(np.asarray(attribution, dtype=np.float64))
    width = max(1, int(round(window_s * fs)))
    if width == 1:
        return mag
    kernel = np.ones(width) / width
    return np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), -1, mag)


def relative_magnitude(attribution: np.ndarray, fs: float) -> np.ndarray:
    """Smoothed |attribution| on one 0..1 scale for all leads (its 99.5th percentile is 1)."""
    mag = smooth_magnitude(attribution, fs)
    top = np.percentile(mag, 99.5)
    return np.clip(mag / top, 0.0, 1.0) if top > 0 else np.zeros_like(mag)


def _title_lines(
    record: str | None,
    class_name: str | None,
    probability: float | None,
    truth: Sequence[str] | None,
    method: str | None,
    threshold: float | None,
    time_only: bool = False,
) -> tuple[str, str]:
    head = []
    if class_name is not None:
        head.append(f"{class_name}")
    if probability is not None:
        verdict = ""
        if threshold is not None:
            verdict = f"  ({'above' if probability >= threshold else 'below'} its threshold {threshold:.3f})"
        head.append(f"predicted probability {probability:.3f}{verdict}")
    sub = []
    if record is not None:
        sub.append(str(record))
    if truth is not None:
        sub.append("true labels: " + (", ".join(truth) if truth else "none of the model's classes"))
    if method is not None:
        # a 1D network's Grad-CAM is a time map (its first convolution mixes the leads)
        sub.append(
            METHOD_NAMES.get(method, method)
            + (" (time only: the same on every lead)" if time_only else "")
        )
    return "  ·  ".join(head), "  ·  ".join(sub)


def _grid(ax: plt.Axes, width_mm: float, height_mm: float) -> None:
    ax.set_facecolor(PAPER_COLOUR)
    for step, colour, lw in ((1.0, MINOR_COLOUR, 0.35), (5.0, MAJOR_COLOUR, 0.7)):
        xs = np.arange(0.0, width_mm + 1e-6, step)
        ys = np.arange(0.0, height_mm + 1e-6, step)
        segs = [((x, 0.0), (x, height_mm)) for x in xs] + [((0.0, y), (width_mm, y)) for y in ys]
        ax.add_collection(LineCollection(segs, colors=colour, linewidths=lw, zorder=0))


def band_alpha(values: np.ndarray) -> np.ndarray:
    """Opacity of the heat band: a power above 1 keeps weak attribution from tinting the page."""
    return 0.8 * np.clip(values, 0.0, 1.0) ** 1.5


def _heat_band(
    ax: plt.Axes, x0: float, x1: float, y: float, values: np.ndarray, half_height: float
) -> None:
    """Relative attribution (0..1) as a translucent blue band centred on a trace's baseline."""
    if len(values) == 0:
        return
    rgba = np.zeros((1, len(values), 4))
    rgba[0, :, :3] = matplotlib.colors.to_rgb(HEAT_COLOUR)
    rgba[0, :, 3] = band_alpha(values)
    ax.imshow(
        rgba, extent=(x0, x1, y - half_height, y + half_height), aspect="auto",
        interpolation="bilinear", zorder=1,
    )  # fmt: skip


def _calibration(ax: plt.Axes, y: float) -> None:
    xs = [1.5, 3.0, 3.0, 8.0, 8.0, 9.5]
    ys = [y, y, y + 10.0, y + 10.0, y, y]  # 1 mV = 10 mm, 0.2 s = 5 mm
    ax.plot(xs, ys, color=TRACE_COLOUR, lw=0.9, zorder=3, solid_joinstyle="miter")


def _trace(ax: plt.Axes, x0: float, y: float, values: np.ndarray, fs: float) -> None:
    t_mm = x0 + np.arange(len(values)) / fs * MM_PER_S
    ax.plot(t_mm, y + values * MM_PER_MV, color=TRACE_COLOUR, lw=0.8, zorder=3)


def paper_figure(
    signal: np.ndarray,
    fs: float,
    attribution: np.ndarray | None = None,
    leads: Sequence[str] = (
        "I",
        "II",
        "III",
        "AVR",
        "AVL",
        "AVF",
        "V1",
        "V2",
        "V3",
        "V4",
        "V5",
        "V6",
    ),
    record: str | None = None,
    class_name: str | None = None,
    probability: float | None = None,
    truth: Sequence[str] | None = None,
    method: str | None = None,
    threshold: float | None = None,
    start_s: float = 0.0,
) -> Figure:
    """The ECG (leads, T) in millivolts on ECG paper; with ``attribution`` (same shape), its heat band.
    ``start_s``: where the signal starts in its recording (a segment's start), for the seconds named."""
    signal = np.asarray(signal, dtype=np.float64)
    names = [str(lead).upper() for lead in leads]
    if signal.ndim != 2 or signal.shape[0] != len(names):
        raise EcgcnnError(f"expected an ECG of shape ({len(names)}, samples), got {signal.shape}")
    needed = {lead for row in LAYOUT for lead in row} | {RHYTHM_LEAD}
    absent = sorted(needed - set(names))
    if absent:
        raise EcgcnnError(f"ECG paper needs the 12 standard leads; missing {', '.join(absent)}")
    if attribution is not None and np.shape(attribution) != signal.shape:
        raise EcgcnnError(
            f"attribution {np.shape(attribution)} does not match the ECG {signal.shape}"
        )
    index = {lead: i for i, lead in enumerate(names)}
    col_n = int(round(COLUMN_S * fs))
    total, first, chosen = signal.shape[1], 0, False
    if total > 4 * col_n:  # a page holds 10 s: those with the most attribution (else the first)
        if attribution is not None:
            mass = np.concatenate([[0.0], np.cumsum(np.abs(np.asarray(attribution)).sum(axis=0))])
            chosen = bool(np.isfinite(mass[-1]) and mass[-1] > 0)
            if chosen:
                first = int(np.argmax(mass[4 * col_n :] - mass[: -4 * col_n]))
        signal = signal[:, first : first + 4 * col_n]
        if attribution is not None:
            attribution = np.asarray(attribution)[:, first : first + 4 * col_n]
    heat = relative_magnitude(attribution, fs) if attribution is not None else None
    n = signal.shape[1]
    width = CAL_MM + 4 * COLUMN_S * MM_PER_S  # 260 mm
    height = 4 * ROW_MM + 5.0  # three rows and the rhythm strip
    baselines = [height - 22.0 - r * ROW_MM for r in range(4)]

    # Lay the page out in millimetres so the grid is true to scale whatever the dpi.
    left, gap, side = 8.0, 12.0, 46.0 if heat is not None else 0.0
    top, bottom = 20.0, 15.0
    fig_w = left + width + (gap + side if heat is not None else 8.0) + 6.0
    fig_h = top + height + bottom
    fig = plt.figure(figsize=(fig_w / 25.4, fig_h / 25.4))
    ax = fig.add_axes((left / fig_w, bottom / fig_h, width / fig_w, height / fig_h))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    _grid(ax, width, height)

    def segment(lead: str, start: int, stop: int, x0: float, y: float) -> None:
        i = index[lead]
        values = signal[i, start:stop]
        if heat is not None:
            _heat_band(ax, x0, x0 + len(values) / fs * MM_PER_S, y, heat[i, start:stop], 11.0)
        _trace(ax, x0, y, values, fs)
        # A paper-coloured box keeps the name readable where a tall R wave runs through it.
        ax.text(x0 + 1.2, y + 9.5, display_lead(lead), fontsize=8.5, fontweight="bold",
                color="#222222", zorder=4, va="center",
                bbox={"facecolor": PAPER_COLOUR, "edgecolor": "none", "pad": 0.6, "alpha": 0.85})  # fmt: skip

    # Column c shows the c-th 2.5 s; a record shorter than the page (a windowed model reads 2.5 s
    # on) shows its last 2.5 s in the columns it cannot fill, rather than no V1-V6 at all.
    starts = [min(c * col_n, max(n - col_n, 0)) for c in range(4)]
    for r, row in enumerate(LAYOUT):
        y = baselines[r]
        _calibration(ax, y)
        for c, lead in enumerate(row):
            start, stop = starts[c], min(starts[c] + col_n, n)
            x0 = CAL_MM + c * COLUMN_S * MM_PER_S
            if start < n:
                segment(lead, start, stop, x0, y)
            if c > 0:  # the printout's column divider
                ax.plot([x0, x0], [y - 4.0, y + 4.0], color=TRACE_COLOUR, lw=0.9, zorder=3)
    y = baselines[3]
    _calibration(ax, y)
    segment(RHYTHM_LEAD, 0, min(n, 4 * col_n), CAL_MM, y)

    time_only = attribution is not None and bool(
        (np.asarray(attribution) == np.asarray(attribution)[:1]).all()
    )
    head, sub = _title_lines(record, class_name, probability, truth, method, threshold, time_only)
    fig.text(left / fig_w, 1 - 7.0 / fig_h, head or (record or "ECG"), fontsize=13,
             fontweight="bold", va="center")  # fmt: skip
    if sub:
        fig.text(left / fig_w, 1 - 14.0 / fig_h, sub, fontsize=9.5, color="#444444", va="center")
    whole = f"{start_s:g}-{start_s + total / fs:g} s" if start_s else f"{total / fs:g} s"
    shown = (
        f"{start_s + first / fs:g}-{start_s + (first + n) / fs:g} s of {whole} drawn"
        + (" (the most attribution)" if chosen else "")
        if total > n else whole
    )  # fmt: skip
    if starts != [c * col_n for c in range(4)]:
        shown += f" (columns from {', '.join(f'{start_s + (first + i) / fs:g}' for i in starts)} s)"
    note = f"25 mm/s  ·  10 mm/mV  ·  {fs:g} Hz  ·  {shown}  ·  {DISCLAIMER}"
    fig.text(left / fig_w, 6.0 / fig_h, note, fontsize=8, color="#666666", va="center")

    if heat is not None:
        _lead_share_panel(fig, attribution, names, fs, (left + width + gap, bottom, side, height),
                          (fig_w, fig_h))  # fmt: skip
    return fig


def _lead_share_panel(
    fig: Figure,
    attribution: np.ndarray,
    names: list[str],
    fs: float,
    box_mm: tuple[float, float, float, float],
    fig_mm: tuple[float, float],
) -> None:
    """Each lead's share of the total |attribution|, with the uniform share (1/12) marked."""
    x, y, w, h = box_mm
    fw, fh = fig_mm
    ax = fig.add_axes((x / fw, (y + 22.0) / fh, w / fw, (h - 22.0) / fh))
    mass = np.abs(np.asarray(attribution, dtype=np.float64)).sum(axis=1)
    if mass.sum() == 0:  # e.g. Grad-CAM, which keeps only evidence for the class, found none
        ax.text(0.5, 0.5, "no attribution\n(zero everywhere)", ha="center", va="center",
                fontsize=9, color="#666666", transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return
    share = mass / mass.sum()
    pos = np.arange(len(names))[::-1]
    ax.barh(pos, share * 100, color=HEAT_COLOUR, height=0.7)
    ax.axvline(100 / len(names), color="#999999", lw=0.8, ls="--")
    ax.set_yticks(pos, [display_lead(n) for n in names], fontsize=8)
    ax.set_xlabel("share of attribution (%)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlim(0, max(share.max() * 100 * 1.15, 100 / len(names) * 1.5))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title("per lead", fontsize=9, loc="left")
    # The heat scale, under the bars.
    cax = fig.add_axes((x / fw, (y + 3.0) / fh, w / fw, 2.5 / fh))
    gradient = np.linspace(0, 1, 256)[None, :]
    rgba = np.zeros((1, 256, 4))
    rgba[0, :, :3] = matplotlib.colors.to_rgb(HEAT_COLOUR)
    rgba[0, :, 3] = band_alpha(gradient[0])
    cax.imshow(rgba, aspect="auto", extent=(0, 1, 0, 1))
    cax.set_yticks([])
    cax.set_xticks([0, 1], ["low", "high"], fontsize=7)
    cax.set_title("attribution band", fontsize=7.5, pad=2)


def image_figure(
    image: np.ndarray,
    image_attribution: np.ndarray,
    leads: Sequence[str],
    duration_s: float | None = None,
    record: str | None = None,
    class_name: str | None = None,
    probability: float | None = None,
    truth: Sequence[str] | None = None,
    method: str | None = None,
    threshold: float | None = None,
) -> Figure:
    """An image model's view: the rendered ECG image, and the attribution as a heat map over it."""
    image = np.asarray(image, dtype=np.float64)
    heat = np.abs(np.asarray(image_attribution, dtype=np.float64))
    if image.ndim != 2 or heat.shape != image.shape:
        raise EcgcnnError(f"image {image.shape} and its attribution {heat.shape} must be equal 2D")
    top = np.percentile(heat, 99.5)
    heat = np.clip(heat / top, 0, 1) if top > 0 else heat
    h, w = image.shape
    rows = h // len(leads)
    extent = (0.0, duration_s if duration_s else float(w), float(h), 0.0)
    fig, axes = plt.subplots(2, 1, figsize=(12, 7.2), sharex=True)
    lim = np.percentile(np.abs(image), 99) or 1.0
    for ax, fade in zip(axes, (1.0, 0.45), strict=True):
        # Below the heat map the image is faded so that the map stands out.
        ax.imshow(image, cmap="gray", vmin=-lim, vmax=lim, aspect="auto", extent=extent,
                  interpolation="nearest", alpha=fade)  # fmt: skip
        ax.set_yticks([(i + 0.5) * rows for i in range(len(leads))],
                      [display_lead(str(n)) for n in leads], fontsize=8)  # fmt: skip
        for i in range(1, len(leads) + 1):
            ax.axhline(i * rows, color="#444444", lw=0.3)
    axes[0].set_title("rendered image, as the model sees it (standardised amplitude)", fontsize=10,
                      loc="left")  # fmt: skip
    im = axes[1].imshow(heat, cmap=IMAGE_HEAT_CMAP, alpha=np.clip(heat * 1.5, 0, 0.95),
                        aspect="auto", extent=extent, interpolation="nearest", vmin=0, vmax=1)  # fmt: skip
    axes[1].set_title("attribution over the image", fontsize=10, loc="left")
    axes[1].set_xlabel("time (s)" if duration_s else "image column")
    fig.colorbar(im, ax=axes, fraction=0.025, pad=0.01, label="relative |attribution|")
    head, sub = _title_lines(record, class_name, probability, truth, method, threshold)
    fig.suptitle(head + ("\n" + sub if sub else ""), x=0.06, ha="left", fontsize=11)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write a figure as PNG atomically and close it."""
    path = Path(path)
    try:
        atomic.write_with(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    finally:
        plt.close(fig)
    return path


def figure_png(fig: Figure, dpi: int = 100, colours: int | None = None) -> bytes:
    """A figure as PNG bytes (for embedding), and close it.

    ``colours``: reduce to a palette of that many colours; an ECG page shrinks about 3-fold
    (a report embeds many) with no visible change.
    """
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    if colours is None:
        return buf.getvalue()
    from PIL import Image

    buf.seek(0)
    image = Image.open(buf).convert("RGB").quantize(colors=colours)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def plot_paper(
    signal: np.ndarray, attribution: np.ndarray | None, fs: float, path: str | Path,
    dpi: int = 150, **kwargs: object,
) -> Path:  # fmt: skip
    """``paper_figure`` written to ``path`` as PNG."""
    return save_figure(paper_figure(signal, fs, attribution, **kwargs), path, dpi)


def plot_image_attribution(
    image: np.ndarray, image_attribution: np.ndarray, path: str | Path, dpi: int = 130,
    **kwargs: object,
) -> Path:  # fmt: skip
    """``image_figure`` written to ``path`` as PNG."""
    return save_figure(image_figure(image, image_attribution, **kwargs), path, dpi)
