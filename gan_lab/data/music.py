"""Multi-track piano rolls (data kind ``roll``) and MIDI files made from them.

A phrase is a binary piano roll of shape (tracks, bars * steps_per_bar, pitches): time at
``beat_resolution`` steps per beat, 4/4 bars, pitch index 0 = MIDI ``lowest_pitch``. Batches give
``{"real": (B, tracks, time, pitches)}`` in {-1, 1} (stored as uint8 0/255, so the image conversion of
:meth:`TensorDataset.batch` maps them there exactly). Every note ends with a one-step rest, so two repeated
notes stay two notes (Dong et al. 2018, MuseGAN, "Data Preprocessing").

- :class:`BachChorales`: the Bach chorales that the ``music21`` package ships (its corpus), the SATB
  chorales in 4/4, cut into non-overlapping phrases. Parsed once (about 20 s) and cached in
  ``cache_dir``; the same settings and music21 version give the same tensor.
- :class:`PianorollNPZ`: the phrase file format of the Lakh Pianoroll Dataset as MuseGAN trains on it
  (``train_x_lpd_5_phr.npz``: ``shape`` (N, bars, steps, pitches, tracks) and ``nonzero``, the indices
  of the notes' steps).

:func:`write_midi` turns a roll back into a MIDI file (``gan-lab sample format=midi``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from gan_lab.data.base import TensorDataset, absolute_root, check_int
from gan_lab.errors import ConfigError, DataNotFoundError
from gan_lab.metrics import cache

log = logging.getLogger("gan_lab")

SATB = ("Soprano", "Alto", "Tenor", "Bass")
INSTALL = "pip install 'gan-lab[music]'"


def import_optional(module: str):
    """``module`` of the ``music`` extra, or a ConfigError saying how to install it."""
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"{module} is not installed; music data and MIDI files need the music extra: "
                          f"{INSTALL}") from None


class PianoRolls(TensorDataset):
    """Phrases (N, tracks, bars * steps_per_bar, pitches) and what they mean: ``tracks`` (names),
    ``programs`` (General MIDI, 0-based), ``drums`` (per track), ``beat_resolution`` (steps per beat),
    ``lowest_pitch`` (MIDI number of pitch index 0), ``bars``. ``count``: keep the first phrases only."""

    kind = "roll"
    beats_per_bar = 4

    def __init__(self, rolls: torch.Tensor, *, tracks, programs, drums, beat_resolution: int, lowest_pitch: int,
                 bars: int, count: int | None = None):
        self.tracks, self.programs, self.drums = list(tracks), list(programs), [bool(d) for d in drums]
        if not len(self.tracks) == len(self.programs) == len(self.drums) == rolls.shape[1]:
            raise ValueError(f"dataset.tracks, programs and drums must name each of the {rolls.shape[1]} tracks")
        self.beat_resolution, self.lowest_pitch, self.bars = beat_resolution, lowest_pitch, bars
        if count is not None:
            rolls = rolls[:check_int("count", count)]
        super().__init__({"real": rolls.to(torch.uint8) * 255})

    @property
    def steps_per_bar(self) -> int:
        return self.beat_resolution * self.beats_per_bar

    @property
    def pitches(self) -> int:
        return self.tensors["real"].shape[-1]


# -- the music21 Bach chorales --

def chorale_roll(score, resolution: int, lowest_pitch: int, pitches: int):
    """One SATB chorale (a music21 score) as a bool roll (4, time, pitches), or None when it is not four
    parts named Soprano, Alto, Tenor, Bass in 4/4. A pickup bar is padded at its start so that bars start
    on the grid; tied notes are merged; each note sounds ``round(offset * res)`` up to one step before
    ``round(end * res)`` (at least one step); grace notes (no duration) and notes outside the pitch range
    are left out."""
    music21 = import_optional("music21")
    parts = list(score.parts)
    if tuple(p.partName for p in parts) != SATB:
        return None
    signature = score.recurse().getElementsByClass(music21.meter.TimeSignature).first()
    if signature is None or signature.ratioString != "4/4":
        return None
    first = parts[0].getElementsByClass(music21.stream.Measure).first()
    pad = round(max(0.0, 4 - float(first.duration.quarterLength)) * resolution)
    notes = [[(float(n.offset), float(n.quarterLength), p.midi) for n in part.stripTies().flatten().notes
              for p in n.pitches] for part in parts]
    length = pad + max(round((on + dur) * resolution) for voice in notes for on, dur, _ in voice)
    roll = np.zeros((4, length, pitches), dtype=bool)
    for k, voice in enumerate(notes):
        for on, dur, midi in voice:
            if dur == 0 or not 0 <= midi - lowest_pitch < pitches:
                continue
            start, end = pad + round(on * resolution), pad + round((on + dur) * resolution)
            roll[k, start:max(end - 1, start + 1), midi - lowest_pitch] = True
    return roll


def parse_chorales(resolution: int, bars: int, lowest_pitch: int, pitches: int) -> torch.Tensor:
    """Non-overlapping phrases of ``bars`` 4/4 bars of every SATB 4/4 chorale of music21's corpus
    (``corpus.chorales.Iterator``, Riemenschneider order), bool (N, 4, bars * 4 * resolution, pitches)."""
    corpus = import_optional("music21").corpus
    phrase = bars * 4 * resolution
    out = []
    for score in corpus.chorales.Iterator():
        roll = chorale_roll(score, resolution, lowest_pitch, pitches)
        if roll is not None:
            out += [roll[:, i:i + phrase] for i in range(0, roll.shape[1] - phrase + 1, phrase)]
    return torch.from_numpy(np.stack(out))


class BachChorales(PianoRolls):
    """music21's Bach chorales: the parts Soprano, Alto, Tenor, Bass (``SATB``) as four tracks (``tracks``
    names them), parsed once and cached. ``tempo``: of the MIDI files written from samples."""

    def __init__(self, cache_dir, tracks=("soprano", "alto", "tenor", "bass"), programs=(52, 52, 52, 52),
                 drums=(False,) * 4, beat_resolution: int = 4, bars: int = 4, lowest_pitch: int = 36,
                 pitches: int = 48, count: int | None = None, tempo: float = 100.0):
        for key, value in (("beat_resolution", beat_resolution), ("bars", bars), ("pitches", pitches)):
            check_int(key, value)
        check_int("lowest_pitch", lowest_pitch, low=0)
        music21 = import_optional("music21")
        key = {"source": "music21 corpus.chorales", "music21": music21.__version__, "recipe": 1,
               "beat_resolution": beat_resolution, "bars": bars, "lowest_pitch": lowest_pitch, "pitches": pitches}
        path = cache.path_for(cache_dir, key)
        rolls = cache.read(path, key, lambda entry: entry["rolls"])
        if rolls is None:
            log.info("parsing the Bach chorales of music21 %s (once, about 20 s)", music21.__version__)
            rolls = parse_chorales(beat_resolution, bars, lowest_pitch, pitches)
            cache.write(path, key, {"rolls": rolls})
        self.tempo = tempo
        if any(drums):
            raise ValueError("dataset.drums: the chorales have no drum track")
        super().__init__(rolls, tracks=tracks, programs=programs, drums=drums, beat_resolution=beat_resolution,
                         lowest_pitch=lowest_pitch, bars=bars, count=count)


# -- the Lakh Pianoroll Dataset's phrase file --

class PianorollNPZ(PianoRolls):
    """Phrases from a MuseGAN training file: ``np.savez_compressed(path, shape=(N, bars, steps, pitches, tracks),
    nonzero=np.nonzero(data))`` (the LPD-5 file ``train_x_lpd_5_phr.npz``: 4 bars, 96 steps, 84 pitches from
    C1 (MIDI 24), tracks bass, drums, guitar, piano, strings)."""

    def __init__(self, path, tracks, programs, drums, beat_resolution: int = 24, bars: int = 4,
                 lowest_pitch: int = 24, pitches: int = 84, count: int | None = None, tempo: float = 100.0):
        if not path:
            raise DataNotFoundError(
                "dataset=pianoroll_npz needs dataset.path=<a phrase file>: the Lakh Pianoroll Dataset's "
                "train_x_lpd_5_phr.npz, from the MuseGAN page (salu133445.github.io/musegan/dataset)")
        file = absolute_root(path)
        if not file.is_file():
            raise DataNotFoundError(
                f"piano-roll phrases not found: looked for {file}. Download train_x_lpd_5_phr.npz (the Lakh "
                f"Pianoroll Dataset, salu133445.github.io/musegan/dataset) and set dataset.path to it")
        with np.load(file) as z:
            shape, nonzero = tuple(int(s) for s in z["shape"]), z["nonzero"]
        if len(shape) != 5:
            raise ValueError(f"{file}: shape must be (phrases, bars, steps, pitches, tracks), got {shape}")
        data = np.zeros(shape, dtype=bool)
        data[tuple(nonzero)] = True
        n, file_bars, steps, file_pitches, m = shape
        for key, want, have in (("bars", bars, file_bars), ("beat_resolution", beat_resolution, steps / 4),
                                ("pitches", pitches, file_pitches)):
            if want != have:
                raise ValueError(f"dataset.{key}={want}, but {file} has {have} (shape {shape})")
        rolls = torch.from_numpy(data.transpose(0, 4, 1, 2, 3).reshape(n, m, bars * steps, pitches))
        self.tempo = tempo
        super().__init__(rolls, tracks=tracks, programs=programs, drums=drums, beat_resolution=beat_resolution,
                         lowest_pitch=lowest_pitch, bars=bars, count=count)


# -- pictures and MIDI --

# Track colours (RGB in [0, 1]) of piano-roll pictures, in track order; colours add where tracks overlap.
PALETTE = torch.tensor([[1.0, 0.25, 0.25], [0.25, 0.85, 0.25], [0.3, 0.5, 1.0], [1.0, 0.7, 0.1],
                        [0.8, 0.3, 1.0], [0.1, 0.9, 0.9], [1.0, 1.0, 1.0], [0.6, 0.6, 0.6]])


def roll_images(rolls: torch.Tensor, steps_per_bar: int, scale: int = 3) -> torch.Tensor:
    """Binary rolls (N, M, time, pitches) as pictures in [-1, 1] (N, 3, pitches * scale, time * scale):
    time to the right, high pitches up, one colour per track (:data:`PALETTE`) on black, bar lines grey."""
    if rolls.shape[1] > len(PALETTE):
        raise ValueError(f"piano-roll pictures colour at most {len(PALETTE)} tracks, got {rolls.shape[1]}")
    colours = PALETTE[:rolls.shape[1]].to(rolls.device)
    image = torch.einsum("nmtp,mc->ncpt", rolls.float(), colours).clamp(max=1).flip(2)
    bar_line = image[:, :, :, ::steps_per_bar]
    bar_line.copy_(torch.where(bar_line.sum(1, keepdim=True) > 0, bar_line, torch.full_like(bar_line, 0.35)))
    image = image.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    return image * 2 - 1


# -- MIDI --

def notes(roll: np.ndarray):
    """(start step, end step, pitch index) of every run of on-steps of one track's roll (time, pitches)."""
    padded = np.pad(roll.astype(np.int8), ((1, 1), (0, 0)))
    change = np.diff(padded, axis=0)
    starts, ends = np.nonzero(change.T == 1), np.nonzero(change.T == -1)
    return [(s, e, p) for p, s, e in zip(starts[0], starts[1], ends[1])]


def write_midi(roll: torch.Tensor, path: Path, *, programs, drums, names, beat_resolution: int,
               lowest_pitch: int, tempo: float = 100.0, velocity: int = 80) -> Path:
    """One phrase (tracks, time, pitches), on where > 0, as a MIDI file at ``tempo`` beats per minute: one
    instrument per track (General MIDI ``programs``, ``drums`` on the drum channel). A note lasts its
    run of on-steps; the one-step rest that separates repeated notes stays a rest."""
    pretty_midi = import_optional("pretty_midi")
    seconds = 60.0 / (tempo * beat_resolution)
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    for track, program, drum, name in zip((roll > 0).cpu().numpy(), programs, drums, names):
        instrument = pretty_midi.Instrument(program=int(program), is_drum=bool(drum), name=str(name))
        instrument.notes = [pretty_midi.Note(velocity=velocity, pitch=int(p) + lowest_pitch, start=s * seconds,
                                             end=e * seconds) for s, e, p in notes(track)]
        pm.instruments.append(instrument)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))
    return path
