"""Where a model looks: attributions (captum) for one ECG and one class, and the ``explain`` command.

Three methods, all through captum rather than hand-written gradients:

- ``saliency``: |d logit / d input|, the original repository's vanilla-gradient map;
- ``integrated-gradients``: gradients integrated from a flat (0 mV) ECG to the record, so the
  attributions of a record add up to its logit minus the flat line's;
- ``gradcam``: Grad-CAM on the network's last convolution (found by running the model, so it
  works for any registered architecture). A 1D network's first convolution mixes the leads, so
  its Grad-CAM map has a time axis only and is the same on every lead.

Every attribution has the input's shape (12, T). Models that render the ECG to an image inside
the network (cnn2d) are differentiable end to end, so input attributions work for them too; they
also get an image-level map over the rendered picture (``Explanation.image_attribution``).

A checkpoint trained on windows (the benchmark recipe: 2.5 s windows, aggregated by max or mean)
is explained as ``predict`` scores it: the explained score is the logit of the aggregated window
probability (:class:`WindowedScore`), so the probability shown is the one ``predict`` reports,
and Grad-CAM's window maps are put back on the record's timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ecgcnn.errors import EcgcnnError
from ecgcnn.models import Ensemble

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("saliency", "integrated-gradients", "gradcam")
METHOD_TITLES = {
    "saliency": "saliency (|gradient|)",
    "integrated-gradients": "integrated gradients",
    "gradcam": "Grad-CAM (last conv layer)",
}
IG_STEPS = 32
IG_BATCH = 256  # model inputs (windows of all IG steps) per forward pass at most


def check_method(method: str) -> str:
    if method not in METHODS:
        raise EcgcnnError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return method


def _trace_modules(model: nn.Module, example: torch.Tensor) -> list[tuple[nn.Module, Any, Any]]:
    """(module, input, output) of every submodule call of one forward pass, in call order."""
    calls: list[tuple[nn.Module, Any, Any]] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: calls.append((mod, inp, out)))
        for m in model.modules()
        if m is not model
    ]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return calls


def _example(model: nn.Module, leads: int = 12, samples: int = 1000) -> torch.Tensor:
    meta = getattr(model, "meta", {}) or {}
    leads = len(meta.get("leads", [])) or leads
    samples = int(meta.get("input_length", samples))
    return torch.zeros(1, leads, samples)


def last_conv_layer(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module:
    """The Conv1d/Conv2d that runs last in a forward pass (call order, not definition order)."""
    x = _example(model) if example is None else example
    convs = [m for m, _, _ in _trace_modules(model, x) if isinstance(m, nn.Conv1d | nn.Conv2d)]
    if not convs:
        raise EcgcnnError(f"{type(model).__name__} has no Conv1d/Conv2d layer for Grad-CAM")
    return convs[-1]


def cam_layers(model: nn.Module, example: torch.Tensor | None = None) -> list[nn.Module]:
    """The layers Grad-CAM looks at: the last convolution, or each member's in an ensemble."""
    ensembles = [m for m in model.modules() if isinstance(m, Ensemble)]
    if not ensembles:
        return [last_conv_layer(model, example)]
    x = _example(model) if example is None else example
    convs = [m for m, _, _ in _trace_modules(model, x) if isinstance(m, nn.Conv1d | nn.Conv2d)]
    layers = []
    for member in ensembles[0].members:
        own = [c for c in convs if any(c is m for m in member.modules())]
        if not own:
            raise EcgcnnError(f"{type(member).__name__} has no Conv1d/Conv2d layer for Grad-CAM")
        layers.append(own[-1])
    return layers


def image_layer(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module | None:
    """The module that turns the (batch, leads, samples) ECG into a (batch, C, H, W) image, if any.

    None for an ensemble: each member renders its own copy of the picture, and a map of one copy
    would leave out the other members.
    """
    if any(isinstance(m, Ensemble) for m in model.modules()):
        return None
    x = _example(model) if example is None else example
    for module, inp, out in _trace_modules(model, x):
        first = inp[0] if isinstance(inp, tuple) and inp else inp
        if (
            isinstance(first, torch.Tensor)
            and isinstance(out, torch.Tensor)
            and first.dim() == 3
            and out.dim() == 4
        ):
            return module
    return None


def _gradcam_layer(
    model: nn.Module, layer: nn.Module, x: torch.Tensor, target: int
) -> torch.Tensor:
    from captum.attr import LayerGradCam

    # relu_attributions: Grad-CAM keeps the regions that raise the class score.
    return LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True).detach()


def _pull_back(render: nn.Module, x: torch.Tensor, image_map: torch.Tensor) -> torch.Tensor:
    """An image-level map taken back to the (leads, samples) input through the rendering.

    Each input sample gets the weighted mean of the pixels it is drawn into (the rendering's own
    weights, via its transposed Jacobian); samples drawn into no pixel are interpolated in time.
    """
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        image = render(x)
        summed = torch.autograd.grad(image, x, grad_outputs=image_map.expand_as(image))[0]
    x2 = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        image = render(x2)
        weight = torch.autograd.grad(image, x2, grad_outputs=torch.ones_like(image))[0]
    mean = (summed / weight.clamp_min(1e-12)).detach().numpy()[0]
    covered = weight.detach().numpy()[0] > 1e-9
    t = np.arange(mean.shape[-1])
    out = np.zeros_like(mean)
    for lead in range(mean.shape[0]):
        if covered[lead].any():
            out[lead] = np.interp(t, t[covered[lead]], mean[lead, covered[lead]])
    return torch.from_numpy(out)


class WindowedScore(nn.Module):
    """A windowed model as one function of the whole record: (B, leads, T) -> (B, classes), the
    logit of the window probabilities aggregated as the checkpoint says (what predict reports)."""

    def __init__(self, model: nn.Module, window: int, stride: int, how: str) -> None:
        super().__init__()
        self.model, self.window, self.stride, self.how = model, int(window), int(stride), how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ecgcnn.windows import aggregate, sliding_windows

        w = sliding_windows(x, self.window, self.stride)  # (B, W, leads, window)
        logits = self.model(w.flatten(0, 1)).reshape(w.shape[0], w.shape[1], -1)
        # In log space, so a confident record keeps its gradient (a probability of 1 - 1e-9
        # rounds to 1 in float32): the sigmoid is monotone, so the max probability's logit is the
        # max logit; the mean's is log(mean sigmoid(l)) - log(mean sigmoid(-l)).
        if self.how == "max":
            return logits.amax(dim=1)
        if self.how == "mean":
            up = torch.logsumexp(F.logsigmoid(logits), dim=1)
            return up - torch.logsumexp(F.logsigmoid(-logits), dim=1)
        return aggregate(logits, self.how)  # names the aggregations there are


def record_scorer(
    model: nn.Module, samples: int, window: int | None, stride: int | None, aggregate: str
) -> nn.Module:
    """What scores a record of ``samples`` as predict does: the model itself, or (for a checkpoint
    trained on shorter windows) its aggregated sliding windows."""
    if window is None or window >= samples:
        return model
    return WindowedScore(model, window, int(stride or max(window // 2, 1)), aggregate)


def _on_timeline(cam: torch.Tensor, starts: np.ndarray, window: int, samples: int) -> torch.Tensor:
    """Per-window time maps (W, 1, T') back on the record's timeline (1, 1, samples): each window's
    map stretched to its span, averaged where windows overlap."""
    spans = F.interpolate(cam, size=window, mode="linear", align_corners=False)[:, 0]
    total, count = torch.zeros(samples), torch.zeros(samples)
    for start, span in zip(starts, spans, strict=True):
        total[start : start + window] += span
        count[start : start + window] += 1
    return (total / count.clamp_min(1))[None, None]


def attribute(
    model: nn.Module, signal: np.ndarray | torch.Tensor, class_index: int, method: str = "saliency"
) -> np.ndarray:
    """Attribution of class ``class_index``'s logit to each sample of ``signal`` (leads, T): same shape."""
    return explain_signal(model, signal, class_index, method).attribution


@dataclass
class Explanation:
    """One record explained for one class."""

    signal: np.ndarray  # (leads, T) millivolts
    attribution: np.ndarray  # (leads, T)
    method: str
    class_index: int
    probability: float
    image: np.ndarray | None = None  # (H, W) rendered input of an image model
    image_attribution: np.ndarray | None = None  # (H, W)


def explain_signal(
    model: nn.Module,
    signal: np.ndarray | torch.Tensor,
    class_index: int,
    method: str = "saliency",
    window: int | None = None,
    stride: int | None = None,
    aggregate: str = "max",
    image_maps: bool = True,
) -> Explanation:
    """Attribute one class of one ECG (leads, T) with ``method``; image maps too for image models.

    With ``window`` (samples; a checkpoint's ``window``, ``stride`` and ``aggregate``), the record
    is scored as sliding windows whose probabilities are aggregated, as ``predict`` does.
    ``image_maps=False`` leaves out the maps over an image model's picture: saliency and integrated
    gradients then put no hook on the model, so threads sharing it may explain at once (Grad-CAM,
    which is drawn on the picture, ignores it).
    """
    from captum.attr import (
        IntegratedGradients,
        LayerGradientXActivation,
        LayerIntegratedGradients,
        Saliency,
    )

    from ecgcnn.windows import window_starts

    check_method(method)
    x = torch.tensor(np.asarray(signal, dtype=np.float32)).unsqueeze(0)
    x.requires_grad_(True)  # captum would set it, with a warning
    if x.dim() != 3:
        raise EcgcnnError(f"expected one ECG of shape (leads, samples), got {tuple(x.shape[1:])}")
    model.eval()
    scorer = record_scorer(model, x.shape[-1], window, stride, aggregate)
    windowed = isinstance(scorer, WindowedScore)
    with torch.no_grad():
        logits = scorer(x)
    if not 0 <= class_index < logits.shape[1]:
        raise EcgcnnError(f"class index {class_index} is not one of the model's {logits.shape[1]}")
    probability = float(torch.sigmoid(logits[0, class_index]))
    # image maps need one rendered picture: a windowed image model gets the input maps only
    # (Grad-CAM of an image model is drawn on its picture: it needs the image whatever image_maps)
    render = None if windowed or (not image_maps and method != "gradcam") else image_layer(model, x)
    image = image_attr = None
    if method == "saliency":
        attr = Saliency(scorer).attribute(x, target=class_index, abs=True)
    elif method == "integrated-gradients":
        # IG scores every step at once: steps x windows through the model. Bounded, so that
        # minutes of a windowed record take time, not tens of GB.
        windows = len(window_starts(x.shape[-1], scorer.window, scorer.stride)) if windowed else 1
        attr = IntegratedGradients(scorer).attribute(
            x, baselines=torch.zeros_like(x), target=class_index, n_steps=IG_STEPS,
            internal_batch_size=max(1, IG_BATCH // windows),
        )  # fmt: skip
    elif windowed:
        starts = window_starts(x.shape[-1], scorer.window, scorer.stride)
        maps = []
        for layer in cam_layers(model, x[..., : scorer.window]):
            cam = _gradcam_layer(scorer, layer, x, class_index)  # (windows, 1, T') per window
            if cam.dim() != 3:
                raise EcgcnnError(
                    "Grad-CAM of a windowed image model is not supported; use saliency or "
                    "integrated-gradients"
                )
            maps.append(_on_timeline(cam, starts, scorer.window, x.shape[-1]))
        attr = torch.stack(maps).mean(0).expand_as(x)  # an ensemble: the mean of its members'
    else:
        layers = cam_layers(model, x)
        cams = [_gradcam_layer(model, layer, x, class_index) for layer in layers]
        cam = cams[0]  # (1, 1, T') or (1, 1, H', W')
        if len(layers) > 1 and any(c.dim() != 3 for c in cams):
            raise EcgcnnError(
                "Grad-CAM of an ensemble of image models is not supported; use saliency or "
                "integrated-gradients"
            )
        if cam.dim() == 3:
            attr = torch.stack(
                [
                    F.interpolate(c, size=x.shape[-1], mode="linear", align_corners=False)
                    for c in cams
                ]
            ).mean(0)
            attr = attr.expand_as(x)
        else:
            if render is None:
                raise EcgcnnError(
                    f"Grad-CAM: {type(model).__name__}'s last convolution is 2D but no layer "
                    "renders the ECG to an image"
                )
            size = tuple(_rendered(model, render, x).shape[-2:])
            image_attr = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
            attr = _pull_back(render, x, image_attr).unsqueeze(0)
    if render is not None:
        image = _rendered(model, render, x)[0, 0].numpy()
        if image_attr is None:
            # The same method at the image: gradients w.r.t. the rendered picture.
            if method == "saliency":
                image_attr = LayerGradientXActivation(model, render, multiply_by_inputs=False)
                image_attr = image_attr.attribute(x, target=class_index).abs()
            else:
                image_attr = LayerIntegratedGradients(model, render).attribute(
                    x, baselines=torch.zeros_like(x), target=class_index, n_steps=IG_STEPS
                )
        image_attr = image_attr.detach()[0].sum(dim=0).numpy()
    attribution = attr.detach()[0].numpy().astype(np.float32)
    if attribution.shape != tuple(x.shape[1:]) or not np.isfinite(attribution).all():
        raise EcgcnnError(f"{method}: attribution of shape {attribution.shape} is not usable")
    return Explanation(
        signal=x.detach()[0].numpy(),
        attribution=attribution,
        method=method,
        class_index=class_index,
        probability=probability,
        image=image,
        image_attribution=image_attr,
    )


def _rendered(model: nn.Module, render: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The image ``render`` makes inside ``model`` (after whatever comes first, e.g. standardisation)."""
    seen: list[torch.Tensor] = []
    hook = render.register_forward_hook(lambda mod, inp, out: seen.append(out.detach()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        hook.remove()
    return seen[0]


def lead_shares(attribution: np.ndarray) -> np.ndarray:
    """Share of |attribution| on each lead (sums to 1; uniform when the attribution is all zero)."""
    mass = np.abs(attribution).sum(axis=-1)
    total = mass.sum()
    return mass / total if total > 0 else np.full(mass.shape, 1 / len(mass))


# --- the explain command ------------------------------------------------------------------------


@dataclass
class ExplainedClass:
    """One class explained for one record, and the PNG(s) written for it."""

    class_name: str
    probability: float
    threshold: float | None
    paths: list[Path]


def _read_file(
    path: str | Path,
    leads: tuple[str, ...],
    fs: float | None,
    model_fs: float,
    units: str = "mV",
    segment: tuple[float | None, float | None] | None = None,
    baseline: str = "highpass",
    allow_missing_leads: bool = False,
    need: int = 0,
) -> tuple[np.ndarray, str]:
    """A recording file (WFDB, EDF, .npy, CSV...) in the model's leads, its baseline treated as
    ``predict`` does, resampled to its rate; with ``segment`` only that part (named after it:
    'holter 20-30s'). One too short for ``need`` samples at the model's rate (with predict's
    tolerance) is refused before its baseline is treated."""
    from ecgcnn.predict import SHORT_TOLERANCE
    from ecgcnn.recording import (
        FILE_SUFFIXES,
        read_recording,
        remove_baseline,
        resample,
        resampled_length,
    )

    rec = read_recording(path, leads, fs=fs, units=units, segment=segment,
                         allow_missing_leads=allow_missing_leads).validate()  # fmt: skip
    name = Path(rec.name).name
    if Path(name).suffix.lower() in FILE_SUFFIXES:  # WFDB names come without one
        name = Path(name).stem
    if segment is not None:
        start = segment[0] or 0.0
        end = segment[1] if segment[1] is not None else start + rec.duration_s
        name += f" {start:g}-{end:g}s"
    for warning in rec.warnings:
        log.warning("%s: %s", name, warning)
    samples = resampled_length(len(rec.signal), rec.fs, model_fs)
    if samples < need - need // SHORT_TOLERANCE:
        raise EcgcnnError(
            f"{name} holds {samples / model_fs:g} s at {model_fs:g} Hz; the model expects "
            f"{need / model_fs:g} s ({need} samples)"
        )
    signal = remove_baseline(rec.signal, rec.fs, baseline)
    if abs(rec.fs - model_fs) > 1e-6:
        log.warning("%s: resampled from %g Hz to the model's %g Hz", name, rec.fs, model_fs)
        signal = resample(signal, rec.fs, model_fs)
    return signal, name


def _record_signal(
    meta: dict[str, Any],
    record: str | Path | None,
    data_root: str | Path | None,
    ecg_id: int | None,
    fs: float | None = None,
    units: str = "mV",
    segment: tuple[float | None, float | None] | None = None,
    baseline: str | None = None,
    allow_missing_leads: bool = False,
) -> tuple[np.ndarray, str, list[str] | None]:
    """(signal (leads, T), display id, true labels or None) from a recording file (its baseline
    treated as ``predict`` does) or a PTB-XL root (as ``evaluate`` scores it: the baseline as in the
    records the model learnt from)."""
    from ecgcnn.cache import rate_to_read
    from ecgcnn.labels import make_labels
    from ecgcnn.recording import checkpoint_baseline, default_baseline, remove_baseline, resample
    from ecgcnn.records import load_database, read_record

    leads, model_fs = tuple(meta["leads"]), meta["fs"]
    if (record is None) == (data_root is None):
        raise EcgcnnError("give either --record PATH or --data-root DIR --ecg-id N")
    truth = None
    if record is not None:
        baseline = baseline or default_baseline(checkpoint_baseline(meta))
        need = int(meta.get("window") or meta.get("input_length") or 0)
        signal, name = _read_file(record, leads, fs, model_fs, units, segment, baseline,
                                  allow_missing_leads, need)  # fmt: skip
    elif segment is not None:
        raise EcgcnnError("--segment needs --record (a PTB-XL record is 10 s)")
    else:
        if ecg_id is None:
            raise EcgcnnError("--data-root needs --ecg-id N (the record to explain)")
        db = load_database(data_root)
        if ecg_id not in db.records.index:
            raise EcgcnnError(f"ecg_id {ecg_id} is not in {Path(data_root) / 'ptbxl_database.csv'}")
        read_fs = rate_to_read(db, model_fs)  # the other rate, resampled, where it lacks this one
        signal, _ = read_record(db.record_path(ecg_id, read_fs), leads)
        # as evaluate scores it (the baseline as in the records the model learnt from), unless asked
        signal = remove_baseline(signal, read_fs, baseline or checkpoint_baseline(meta))
        signal = resample(signal, read_fs, model_fs)
        name = f"ecg_id {ecg_id}"
        labels = make_labels(db, meta["task"], tuple(meta["classes"]))
        row = np.flatnonzero(labels.ecg_ids == ecg_id)
        truth = (
            [c for c, v in zip(labels.classes, labels.y[row[0]], strict=True) if v]
            if len(row)
            else []
        )
    from ecgcnn.predict import pad_near_miss

    length = int(meta.get("input_length", len(signal)))
    need = int(meta.get("window") or length)  # a windowed model reads any record of one window
    signal, padded = pad_near_miss(signal, need)  # as predict does
    if padded:
        log.warning("%s: short of the model's %g s: padded with its last value", name,
                    need / model_fs)  # fmt: skip
    if len(signal) < need:
        raise EcgcnnError(
            f"{name} holds {len(signal) / model_fs:g} s at {model_fs:g} Hz; the model expects "
            f"{need / model_fs:g} s ({need} samples)"
        )
    if meta.get("window"):  # scored as predict scores it: windows over all of it, up to a bound
        length = min(len(signal), int(round(WINDOWED_MAX_S * model_fs)))
    if len(signal) > length:
        log.warning(
            "%s: using the first %g s of %g s%s",
            name,
            length / model_fs,
            len(signal) / model_fs,
            " (--segment START:END explains another part)" if meta.get("window") else "",
        )
    return np.ascontiguousarray(signal[:length].T), name, truth


def _choose_classes(
    classes: Sequence[str], prob: np.ndarray, class_name: str | None, top: int | None
) -> list[int]:
    if class_name is not None and top is not None:
        raise EcgcnnError("give --class NAME or --top K, not both")
    if class_name is not None:
        if class_name not in classes:
            raise EcgcnnError(
                f"class {class_name!r} is not one of the model's: {', '.join(classes)}"
            )
        return [list(classes).index(class_name)]
    k = 1 if top is None else top
    if not 1 <= k <= len(classes):
        raise EcgcnnError(f"--top must be between 1 and {len(classes)}, got {k}")
    return [int(i) for i in np.argsort(-prob, kind="stable")[:k]]


# A model that reads windows explains all of a record up to this long (a part `predict --every`
# flagged); a longer one (a whole Holter) is cut, as its attribution would take hours.
WINDOWED_MAX_S = 300.0


def explain_record(
    checkpoint: str | Path,
    out: str | Path,
    record: str | Path | None = None,
    data_root: str | Path | None = None,
    ecg_id: int | None = None,
    method: str = "saliency",
    class_name: str | None = None,
    top: int | None = None,
    fs: float | None = None,
    units: str = "mV",
    segment: tuple[float | None, float | None] | None = None,
    baseline: str | None = None,
    allow_missing_leads: bool = False,
) -> list[ExplainedClass]:
    """Explain one record (a recording file, or an ecg_id of a PTB-XL root): PNGs on ECG paper in ``out``.

    ``segment`` (start, end) in seconds explains that part of a recording file (of a long one, only
    it is read from disk); the PNGs are named after it. ``allow_missing_leads`` fills leads the
    file lacks with zeros, as ``predict`` does.

    Recording files are read by ``ecgcnn.recording`` (WFDB, EDF; .npy and CSV need ``fs``) and
    resampled to the model's rate. Image models (cnn2d) get a second PNG: the attribution as a
    heat map over the rendered image.
    """
    from ecgcnn.checkpoint import load_checkpoint, model_from_checkpoint
    from ecgcnn.evaluate import checkpoint_windows, safe_name
    from ecgcnn.paper import plot_image_attribution, plot_paper

    check_method(method)
    payload = load_checkpoint(checkpoint)
    model = model_from_checkpoint(payload, str(checkpoint))
    meta = model.meta
    signal, name, truth = _record_signal(meta, record, data_root, ecg_id, fs, units, segment,
                                         baseline, allow_missing_leads)  # fmt: skip
    windows = checkpoint_windows(meta)
    scorer = record_scorer(model, signal.shape[1], **windows)
    with torch.no_grad():
        prob = torch.sigmoid(scorer(torch.from_numpy(signal).unsqueeze(0)))[0].numpy()
    classes = list(meta["classes"])
    chosen = _choose_classes(classes, prob, class_name, top)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = safe_name(name.replace("ecg_id ", "ecg"))
    thresholds = meta.get("thresholds") or [None] * len(classes)
    results = []
    for j in chosen:
        ex = explain_signal(model, signal, j, method, **windows)
        cls = classes[j]
        base = out / f"{stem}_{safe_name(cls)}_{method}"
        title = dict(
            record=name, class_name=cls, probability=ex.probability, truth=truth,
            method=method, threshold=thresholds[j],
        )  # fmt: skip
        paths = [plot_paper(ex.signal, ex.attribution, meta["fs"], Path(f"{base}.png"),
                            leads=meta["leads"], start_s=(segment or (0.0,))[0] or 0.0,
                            **title)]  # fmt: skip
        if ex.image_attribution is not None:
            paths.append(
                plot_image_attribution(
                    ex.image,
                    ex.image_attribution,
                    Path(f"{base}_image.png"),
                    leads=meta["leads"],
                    duration_s=signal.shape[1] / meta["fs"],
                    **title,
                )
            )
        results.append(ExplainedClass(cls, ex.probability, thresholds[j], paths))
    return results
