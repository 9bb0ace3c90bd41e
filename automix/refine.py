"""Inference-time optimisation of console settings through the differentiable console.

Two users share one optimiser (:func:`optimise_console`):

* :func:`refine` (style transfer, ``--refine STEPS``): start from a model's prediction and
  take Adam steps that lower the Diff-MST audio-feature (AF) loss between the mix of the
  analysis windows and the reference(s), with a penalty ``λ·mean((θ − θ_pred)²)`` on the
  normalised parameters so the result stays close to the prediction.
* :mod:`automix.reverse` fits every setting to a target mix with the sum/difference MRSTFT loss.

Parameters are optimised in the schema's normalised [0, 1] space through a sigmoid (so they
can never leave their range): ``θ = sigmoid(u)``. Parameters that are frozen, or that moved
less than :data:`UNCHANGED_TOLERANCE` in normalised units, keep their starting physical
value exactly (no float churn from the log/linear round trip).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from automix.console.schema import FX, MASTER, TRACK, ParamGroup
from automix.console.settings import MixSettings
from automix.console.torch_console import mix_console
from automix.errors import AutomixError
from automix.models.inputs import MODEL_INPUT_LIMIT

DEFAULT_REFINE_STEPS = 20
"""Default ``--refine`` steps: a 16-stem song refines in under a minute on 2 cores with the
style-transfer excerpts (2 × 1.5 s; see docs/style-transfer.md for the measured time per step)."""

REFINE_LR = 0.1
"""Adam learning rate on the logits ``u`` (θ = sigmoid(u)); 0.1 moves a mid-range θ by ≈0.025 a step."""

REFINE_PENALTY = 1.0
"""λ of the stay-close penalty ``λ·mean((θ − θ_pred)²)`` (normalised units)."""

ANALYSIS_RMS_DBFS = -20.0
"""Mix and reference windows are scaled to this RMS before the AF loss, so overall loudness
(which finalize sets anyway) does not dominate the style comparison."""

FINAL_LR_FRACTION = 0.1
"""The learning rate decays (cosine) from ``lr`` to this fraction of it over the steps."""

UNCHANGED_TOLERANCE = 1e-4
"""A parameter that moved less than this (normalised) keeps its starting value exactly."""

_LOGIT_MARGIN = 1e-3  # θ0 is clamped into [m, 1 − m] so its logit is finite

# Parameters refinement leaves alone: trim is the stems' loudness normalisation, and master
# gain/make-up only change the overall level, which the loss ignores and finalize sets.
REFINE_FROZEN: dict[str, tuple[str, ...]] = {
    "track": ("trim_db",),
    "fx": (),
    "master": ("gain_db", "compressor.makeup_db"),
}


@dataclass
class OptimiseResult:
    """What :func:`optimise_console` returns.

    Attributes:
        settings: the optimised settings (physical, inside the schema ranges).
        loss_history: total loss before each step, then after the last step (``steps + 1`` values).
        seconds_per_step: median wall time of one forward + backward + update (the first steps
            also pay one-off kernel compilation, so the median is the steady-state cost).
        step_seconds: wall time of every step.
        terms: per-step breakdown of named loss terms (same length as ``loss_history``).
    """

    settings: MixSettings
    loss_history: list[float]
    seconds_per_step: float
    terms: dict[str, list[float]] = field(default_factory=dict)
    step_seconds: list[float] = field(default_factory=list)


def stems_tensor(windows: Sequence[Sequence[np.ndarray]]) -> tuple[Tensor, Tensor]:
    """Analysis windows → the torch console's batch layout.

    Args:
        windows: ``windows[w][k]`` is stem ``k`` in window ``w``, ``(channels, samples)`` with
            channels 1 or 2, every window the same length.

    Returns:
        ``(stems (W, T, 2, n) float32, is_stereo (W, T) bool)``; a mono stem fills channel 0.
    """
    if not windows or not windows[0]:
        raise AutomixError("no analysis windows")
    n = windows[0][0].shape[-1]
    count, tracks = len(windows), len(windows[0])
    stems = torch.zeros(count, tracks, 2, n)
    is_stereo = torch.zeros(count, tracks, dtype=torch.bool)
    for w, window in enumerate(windows):
        for k, audio in enumerate(window):
            stems[w, k, : audio.shape[0]] = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
            is_stereo[w, k] = audio.shape[0] == 2
    return stems, is_stereo


def bounded_by_trim(stems: Tensor, trim_db: np.ndarray, limit: float = MODEL_INPUT_LIMIT) -> Tensor:
    """``stems`` ``(W, T, 2, n)`` clipped so that no sample exceeds ±``limit`` after its track's
    trim (``trim_db``: ``(T,)`` dB), as the models' input is (:func:`automix.models.inputs.scaled_for_model`).

    Real stems are never touched (a trimmed stem peaks far below +60 dBFS). A stem whose level is
    beyond what the trim can correct (a broken render at +569 dBFS) would otherwise overflow the
    float32 console's detector and spectra, and one NaN gradient makes every setting NaN.
    """
    bound = torch.as_tensor(limit / 10.0 ** (np.asarray(trim_db, dtype=np.float64) / 20.0), dtype=stems.dtype)
    bound = bound.clamp(max=torch.finfo(stems.dtype).max)[None, :, None, None]
    return torch.maximum(torch.minimum(stems, bound), -bound)


def frozen_mask(group: ParamGroup, frozen: Sequence[str]) -> Tensor:
    """``(len(group),)`` bool, True for parameters that are optimised."""
    unknown = set(frozen) - set(group.names)
    if unknown:
        raise ValueError(f"{group.name}: unknown parameters {sorted(unknown)}")
    return torch.tensor([name not in frozen for name in group.names])


class _Params(torch.nn.Module):
    """Logits of the optimised parameters of one song, with the frozen ones held fixed."""

    def __init__(self, settings: MixSettings, frozen: dict[str, Sequence[str]]) -> None:
        super().__init__()
        self.groups = {"track": TRACK, "fx": FX, "master": MASTER}
        init = {"track": settings.track, "fx": settings.fx, "master": settings.master}
        self.start_physical: dict[str, Tensor] = {}
        self.start_normalised: dict[str, Tensor] = {}
        self.train_mask: dict[str, Tensor] = {}
        self.start_sigmoid: dict[str, Tensor] = {}  # θ where the logits start (θ0 clamped off the edges)
        self.logits = torch.nn.ParameterDict()
        for key, group in self.groups.items():
            physical = torch.as_tensor(np.asarray(init[key], dtype=np.float64))
            normalised = group.to_normalised(physical).float()
            self.start_physical[key] = physical.float()
            self.start_normalised[key] = normalised
            self.train_mask[key] = frozen_mask(group, frozen.get(key, ()))
            clamped = normalised.clamp(_LOGIT_MARGIN, 1.0 - _LOGIT_MARGIN)
            self.logits[key] = torch.nn.Parameter(torch.log(clamped / (1.0 - clamped)))
            self.start_sigmoid[key] = torch.sigmoid(self.logits[key].detach())

    def normalised(self, key: str) -> Tensor:
        return torch.where(self.train_mask[key], torch.sigmoid(self.logits[key]), self.start_normalised[key])

    def physical(self, key: str) -> Tensor:
        """Physical values; frozen parameters are exactly their starting values."""
        moved = self.groups[key].from_normalised(torch.sigmoid(self.logits[key]))
        return torch.where(self.train_mask[key], moved, self.start_physical[key])

    def penalty(self) -> Tensor:
        """Mean squared normalised distance from the start over the optimised parameters."""
        total, count = torch.zeros(()), 0
        for key in self.groups:
            mask = self.train_mask[key].expand_as(self.start_normalised[key])
            diff = (self.normalised(key) - self.start_normalised[key])[mask]
            total = total + diff.pow(2).sum()
            count += int(mask.sum())
        return total / max(count, 1)

    def to_settings(self, template: MixSettings) -> MixSettings:
        """The current values as settings; parameters that barely moved keep their exact start."""
        out = {}
        with torch.no_grad():
            for key, group in self.groups.items():
                theta = torch.sigmoid(self.logits[key])
                moved = self.train_mask[key] & ((theta - self.start_sigmoid[key]).abs() > UNCHANGED_TOLERANCE)
                start = np.asarray({"track": template.track, "fx": template.fx, "master": template.master}[key],
                                   dtype=np.float64)
                value = group.from_normalised(theta.double()).numpy()
                out[key] = np.clip(np.where(moved.numpy(), value, start), group.minimum(), group.maximum())
        return replace(template, track=out["track"], fx=out["fx"], master=out["master"],
                       notes={k: list(v) for k, v in template.notes.items()}, roles=dict(template.roles))


def optimise_console(
    stems: Tensor,
    is_stereo: Tensor,
    init: MixSettings,
    sample_rate: int,
    loss_fn: Callable[[Tensor], dict[str, Tensor]],
    *,
    steps: int,
    lr: float = REFINE_LR,
    penalty: float = REFINE_PENALTY,
    frozen: dict[str, Sequence[str]] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> OptimiseResult:
    """Adam on the normalised console parameters of one song.

    Args:
        stems: ``(W, T, 2, n)`` analysis windows of the stems; ``is_stereo``: ``(W, T)``.
        init: starting settings (tracks in stem order); the same settings mix every window.
        sample_rate: Hz.
        loss_fn: maps the console output ``(W, 2, n)`` to named scalar loss terms (summed).
        steps: number of updates (0 returns ``init`` unchanged).
        lr: Adam learning rate on the logits.
        penalty: λ of the stay-close penalty (added as the term ``"penalty"``).
        frozen: per group (``"track"``, ``"fx"``, ``"master"``), names kept fixed.
        progress: called with ``(step, total_loss)`` after each step.

    Returns:
        :class:`OptimiseResult`; ``loss_history[0]`` is the starting loss.
    """
    if steps < 0:
        raise AutomixError(f"steps must be 0 or more, got {steps}")
    if stems.shape[1] != len(init.track_names):
        raise AutomixError(f"{stems.shape[1]} stems but the settings have {len(init.track_names)} tracks")
    params = _Params(init, frozen or {})
    stems = bounded_by_trim(stems, np.asarray(init.track)[:, TRACK.index("trim_db")])
    optimiser = torch.optim.Adam(params.parameters(), lr=lr)
    # Cosine decay to FINAL_LR_FRACTION·lr: big moves first, then settle without oscillating.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda i: FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * i / max(steps, 1)))
    )
    batch = stems.shape[0]
    history: list[float] = []
    terms_history: dict[str, list[float]] = {}

    def evaluate() -> Tensor:
        track = params.physical("track").unsqueeze(0).expand(batch, -1, -1)
        fx = params.physical("fx").unsqueeze(0).expand(batch, -1)
        master = params.physical("master").unsqueeze(0).expand(batch, -1)
        out = mix_console(stems, is_stereo, track, fx, master, sample_rate)
        terms = dict(loss_fn(out))
        if penalty > 0:
            terms["penalty"] = penalty * params.penalty()
        for name, value in terms.items():
            terms_history.setdefault(name, []).append(float(value.detach()))
        total = torch.stack(list(terms.values())).sum()
        history.append(float(total.detach()))
        return total

    step_seconds: list[float] = []
    for step in range(steps):
        started = time.perf_counter()
        optimiser.zero_grad()
        total = evaluate()
        if not math.isfinite(history[-1]):
            raise AutomixError("optimisation diverged (loss is not finite); try fewer steps or a smaller rate")
        total.backward()
        for logits in params.parameters():  # a non-finite gradient must not make a setting NaN
            if logits.grad is not None:
                torch.nan_to_num_(logits.grad, nan=0.0, posinf=0.0, neginf=0.0)
        optimiser.step()
        schedule.step()
        step_seconds.append(time.perf_counter() - started)
        if progress is not None:
            progress(step + 1, history[-1])
    with torch.no_grad():
        evaluate()
    median_s = float(np.median(step_seconds)) if step_seconds else 0.0
    return OptimiseResult(params.to_settings(init), history, median_s, terms_history, step_seconds)


# --------------------------------------------------------------------------------------
# Style refinement: AF loss to the reference(s)
# --------------------------------------------------------------------------------------


def normalise_rms(audio: Tensor, rms_dbfs: float = ANALYSIS_RMS_DBFS) -> Tensor:
    """Scale each item of ``(B, C, N)`` to ``rms_dbfs`` (differentiable; silence stays silent)."""
    power = audio.pow(2).mean(dim=(-2, -1), keepdim=True)
    target = 10.0 ** (rms_dbfs / 20.0)
    return audio * (target / torch.sqrt(power + 1e-10))


def reference_targets(
    af_loss: torch.nn.Module, references: Sequence[Sequence[np.ndarray]]
) -> dict[str, Tensor]:
    """Blend the AF features of several references into one target.

    Args:
        af_loss: an :class:`automix.measure.distances.AudioFeatureLoss`.
        references: ``references[r]`` is the list of analysis windows of reference ``r``,
            each ``(2, samples)``.

    Returns:
        Feature dict with batch size 1: the mean over each reference's windows, then the
        mean over references (so every reference weighs the same however long it is).
    """
    if not references or not all(references):
        raise AutomixError("no reference windows to analyse")
    per_ref = []
    with torch.no_grad():
        for windows in references:
            audio = torch.stack([torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)) for w in windows])
            feats = af_loss.features(normalise_rms(audio))
            per_ref.append({k: v.mean(dim=0, keepdim=True) for k, v in feats.items()})
    return {k: torch.stack([f[k] for f in per_ref]).mean(dim=0) for k in per_ref[0]}


def af_loss_fn(af_loss: torch.nn.Module, target: dict[str, Tensor]) -> Callable[[Tensor], dict[str, Tensor]]:
    """Loss terms of a mix ``(B, 2, n)`` against blended reference features (loudness-normalised)."""

    def loss(mix: Tensor) -> dict[str, Tensor]:
        return {f"af.{k}": v for k, v in af_loss.feature_terms(af_loss.features(normalise_rms(mix)), target).items()}

    return loss


def refine(
    stem_windows: Sequence[Sequence[np.ndarray]],
    reference_windows: Sequence[Sequence[np.ndarray]],
    init: MixSettings,
    sample_rate: int,
    *,
    steps: int = DEFAULT_REFINE_STEPS,
    lr: float = REFINE_LR,
    penalty: float = REFINE_PENALTY,
    progress: Callable[[int, float], None] | None = None,
) -> OptimiseResult:
    """Refine predicted settings towards the reference style (AF loss + stay-close penalty).

    Args:
        stem_windows: ``stem_windows[w][k]``: stem ``k`` in analysis window ``w``, ``(C, n)``.
        reference_windows: ``reference_windows[r][j]``: window ``j`` of reference ``r``, ``(2, m)``,
            at ``sample_rate`` (loudness does not matter: windows are RMS-normalised).
        init: the prediction to start from.
        sample_rate: Hz.
        steps, lr, penalty, progress: see :func:`optimise_console`.

    Returns:
        :class:`OptimiseResult`; ``terms["af"]`` is the AF loss alone (without the penalty).
    """
    from automix.measure.distances import AudioFeatureLoss

    af = AudioFeatureLoss(sample_rate)
    target = reference_targets(af, reference_windows)
    stems, is_stereo = stems_tensor(stem_windows)
    result = optimise_console(
        stems, is_stereo, init, sample_rate, af_loss_fn(af, target),
        steps=steps, lr=lr, penalty=penalty, frozen=REFINE_FROZEN, progress=progress,
    )
    af_names = [k for k in result.terms if k.startswith("af.")]
    result.terms["af"] = [sum(vals) for vals in zip(*(result.terms[k] for k in af_names))]
    return result


def af_distance(
    stem_windows: Sequence[Sequence[np.ndarray]],
    reference_windows: Sequence[Sequence[np.ndarray]],
    settings: MixSettings,
    sample_rate: int,
) -> float:
    """AF loss of ``settings`` on the analysis windows against the blended references (no update)."""
    return refine(stem_windows, reference_windows, settings, sample_rate, steps=0).terms["af"][0]
