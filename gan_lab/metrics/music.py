"""The objective metrics of MuseGAN (Dong et al. 2018, "Objective Metrics for Evaluation") on binary
multi-track piano rolls (N, tracks, time, pitches), and their eval plug-ins for data of kind ``roll``.

- EB, empty bars: the ratio of bars without a note, per track;
- UPC, used pitch classes: distinct pitch classes per bar (0-12), averaged over non-empty bars, per track;
- QN, qualified notes: the ratio of notes at least ``threshold`` steps long, per track (the paper: 3 steps
  of 24 per beat, a 32nd note; its code counts >= 2 because of the one-step rest; at 4 steps per beat use 2);
- DP, drum pattern: the ratio of drum onsets on a 16th-note grid (8- or 16-beat patterns), for drum tracks;
- TD, tonal distance (Harte, Sandler and Gasser 2006, "Detecting Harmonic Change in Musical Audio"): per
  beat, each track's chroma normalised to sum 1, mapped to the 6-D tonal centroid, and the Euclidean
  distance between two tracks' centroids, averaged over the beats where both play. Larger: a weaker
  harmonic relation.

The chroma here takes pitch classes, ``(lowest_pitch + index) % 12``. The paper's code (MuseGAN v1
``eval/metrics.py``, and ``src/musegan/metrics.py``) reshapes the pitch axis as (12, pitches // 12) and sums
over the second axis: it adds up 12 groups of consecutive semitones, not pitch classes (C1 + C2 counts as
two classes). Its published UPC and TD values (Tables 1 and 2) were computed with that chroma, so they are
not comparable with these. pypianoroll's metrics (1.0.4) have the same chroma and other bugs.
"""

from __future__ import annotations

import math

import torch

from gan_lab.metrics.evaluate import Metric


def bars_of(rolls: torch.Tensor, steps_per_bar: int) -> torch.Tensor:
    """(N, M, T, P) -> (N, M, bars, steps_per_bar, P)."""
    n, m, t, p = rolls.shape
    return rolls.reshape(n, m, t // steps_per_bar, steps_per_bar, p)


def chroma(rolls: torch.Tensor, lowest_pitch: int) -> torch.Tensor:
    """(..., P) -> (..., 12): the on-steps of each pitch class (index 0 = C)."""
    classes = (lowest_pitch + torch.arange(rolls.shape[-1], device=rolls.device)) % 12
    out = torch.zeros(*rolls.shape[:-1], 12, device=rolls.device)
    return out.index_add_(-1, classes, rolls.float())


def empty_bars(rolls: torch.Tensor, steps_per_bar: int) -> torch.Tensor:
    """(M,) ratio of empty bars per track."""
    return (~bars_of(rolls, steps_per_bar).flatten(-2).any(-1)).float().mean((0, 2))


def used_pitch_classes(rolls: torch.Tensor, steps_per_bar: int, lowest_pitch: int) -> torch.Tensor:
    """(M,) pitch classes used per non-empty bar, per track (NaN for a track that is always empty)."""
    used = chroma(bars_of(rolls, steps_per_bar).any(-2), lowest_pitch) > 0  # (N, M, bars, 12)
    count = used.sum(-1).float()
    played = count > 0
    return (count * played).sum((0, 2)) / played.sum((0, 2))


def note_lengths(rolls: torch.Tensor) -> list[torch.Tensor]:
    """Per track, the lengths of all notes (runs of on-steps at one pitch) of every phrase."""
    padded = torch.nn.functional.pad(rolls.to(torch.int8).transpose(-1, -2), (1, 1))  # (N, M, P, T + 2)
    change = padded.diff(dim=-1)
    out = []
    for k in range(rolls.shape[1]):
        starts = (change[:, k] == 1).nonzero()  # rows sorted by (sample, pitch, step): runs pair up in order
        ends = (change[:, k] == -1).nonzero()
        out.append(ends[:, -1] - starts[:, -1])
    return out


def qualified_notes(rolls: torch.Tensor, threshold: int) -> torch.Tensor:
    """(M,) ratio of notes at least ``threshold`` steps long, per track (NaN without notes)."""
    return torch.stack([(lengths >= threshold).float().mean() if len(lengths) else torch.tensor(math.nan)
                        for lengths in note_lengths(rolls)])


def drum_pattern(rolls: torch.Tensor, beat_resolution: int) -> torch.Tensor:
    """Ratio of the onsets of one drum track (N, T, P) on a 16th-note grid, the best of its phases: weight 1
    on the grid and 0.3 one step off it, as the paper's code (its template [1, .3, 0, 0, 0, .3] at 24 steps
    per beat). At 4 steps per beat every step is on the grid."""
    period = max(1, beat_resolution // 4)
    template = torch.zeros(period)
    template[0] = 1.0
    if period > 2:
        template[1] = template[-1] = 0.3
    padded = torch.nn.functional.pad(rolls.float(), (0, 0, 1, 0))
    onsets = (padded.diff(dim=1) > 0).sum((0, 2))  # (T,) onsets per step
    if onsets.sum() == 0:
        return torch.tensor(math.nan)
    weights = template.repeat(math.ceil(len(onsets) / period))[:len(onsets)]
    return max((torch.roll(weights, shift) * onsets).sum() for shift in range(period)) / onsets.sum()


def tonal_matrix(r: tuple[float, float, float] = (1.0, 1.0, 0.5)) -> torch.Tensor:
    """(6, 12) the tonal centroid transform of Harte et al. 2006: the circle of fifths (7 pi / 6), minor
    thirds (3 pi / 2) and major thirds (2 pi / 3), radii ``r``."""
    k = torch.arange(12, dtype=torch.float64)
    rows = []
    for radius, angle in zip(r, (7 * math.pi / 6, 3 * math.pi / 2, 2 * math.pi / 3)):
        rows += [radius * torch.sin(k * angle), radius * torch.cos(k * angle)]
    return torch.stack(rows).float()


def tonal_distance(a: torch.Tensor, b: torch.Tensor, beat_resolution: int, lowest_pitch: int) -> float:
    """TD between two tracks (N, T, P): the mean over beats where both sound of the distance between their
    tonal centroids (chroma normalised to sum 1 per beat). NaN when they never sound together."""
    def centroids(roll):
        n, t, p = roll.shape
        c = chroma(roll.reshape(n, t // beat_resolution, beat_resolution, p).sum(2), lowest_pitch)
        total = c.sum(-1, keepdim=True)
        return (c / total.clamp_min(1)) @ tonal_matrix().T.to(roll.device), total.squeeze(-1) > 0

    ca, played_a = centroids(a.float())
    cb, played_b = centroids(b.float())
    both = played_a & played_b
    if not both.any():
        return math.nan
    return float((ca - cb).norm(dim=-1)[both].mean())


# -- eval plug-ins: each reports the generated samples and, as a reference, the real ones --

class MusicMetric(Metric):
    """A MuseGAN metric of piano-roll samples (data kind ``roll``); generated samples are binarised at 0
    (the tanh output's midpoint, as the paper). Keys: ``<name> <track>`` and ``<name> <track> (data)`` for
    the real phrases of the set."""

    name = ""

    def applies(self, ev, s) -> bool:
        return ev.data.kind == "roll" and s.given is None

    def __call__(self, ev, s) -> dict[str, float]:
        out = {}
        for suffix, rolls in (("", ev.outputs(s).fake > 0), (" (data)", s.real.cpu() > 0)):
            out.update({f"{self.name} {key}{suffix}": value for key, value in self.measure(ev.data, rolls).items()})
        return out

    def measure(self, data, rolls: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError


class EmptyBars(MusicMetric):
    name = "EB %"

    def measure(self, data, rolls):
        return dict(zip(data.tracks, (100 * empty_bars(rolls, data.steps_per_bar)).tolist()))


class UsedPitchClasses(MusicMetric):
    name = "UPC"

    def measure(self, data, rolls):
        return dict(zip(data.tracks, used_pitch_classes(rolls, data.steps_per_bar, data.lowest_pitch).tolist()))


class QualifiedNotes(MusicMetric):
    """QN with notes of at least ``threshold`` steps qualified."""

    name = "QN %"

    def __init__(self, threshold: int = 2):
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ValueError(f"eval.available.qn.threshold must be a positive integer, got {threshold!r}")
        self.threshold = threshold

    def measure(self, data, rolls):
        return dict(zip(data.tracks, (100 * qualified_notes(rolls, self.threshold)).tolist()))


class DrumPattern(MusicMetric):
    """DP of each drum track; it applies only to data with one (the Bach chorales have none)."""

    name = "DP %"

    def applies(self, ev, s) -> bool:
        return super().applies(ev, s) and any(ev.data.drums)

    def measure(self, data, rolls):
        return {name: 100 * float(drum_pattern(rolls[:, k], data.beat_resolution))
                for k, name in enumerate(data.tracks) if data.drums[k]}


class TonalDistance(MusicMetric):
    """TD of every pair of non-drum tracks; the real phrases are also measured with their tracks re-paired
    across phrases at random (``(shuffled data)``, a fixed permutation per track from ``seed``): TD of
    unrelated tracks, the paper's "train (shuffled)" row."""

    name = "TD"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def __call__(self, ev, s) -> dict[str, float]:
        out = super().__call__(ev, s)
        real = s.real.cpu() > 0
        gen = torch.Generator().manual_seed(self.seed)
        shuffled = torch.stack([real[torch.randperm(len(real), generator=gen), k] for k in range(real.shape[1])], 1)
        out.update({f"TD {key} (shuffled data)": v for key, v in self.measure(ev.data, shuffled).items()})
        return out

    def measure(self, data, rolls):
        pitched = [k for k in range(rolls.shape[1]) if not data.drums[k]]
        return {f"{data.tracks[i]}-{data.tracks[j]}": tonal_distance(rolls[:, i], rolls[:, j], data.beat_resolution,
                                                                      data.lowest_pitch)
                for n, i in enumerate(pitched) for j in pitched[n + 1:]}
