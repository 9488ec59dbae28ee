"""MuseGAN (Dong et al. 2018): its metrics on hand-made rolls, the generator's latent structure (Eq. 5), the
per-track critics and their penalty, the piano-roll data and MIDI files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gan_lab.data.music import PianorollNPZ, notes, roll_images
from gan_lab.errors import ConfigError, DataNotFoundError
from gan_lab.losses.penalties import gradient_penalty
from gan_lab.metrics import music
from gan_lab.metrics.evaluate import Metric
from gan_lab.models.musegan import Discriminator, Generator
from tests.conftest import TINY, compose_train

LOW = 36  # pitch index 0 = MIDI 36 (C2)
C3, D4, C4, E4, G4 = 48, 62, 60, 64, 67
TRACKS = ["soprano", "alto", "tenor", "bass"]


def known_roll() -> torch.Tensor:
    """Spec §2.4 test 1: 4 bars of 16 steps, 2 tracks. Track 0: bar 1 C4-E4-G4 for 8 steps, D4 for 1 step (step 8)
    and for 6 (steps 10-15); bar 3 C3 + C4 for the whole bar. Track 1: C3 for the whole of bar 1."""
    r = torch.zeros(1, 2, 64, 48, dtype=torch.bool)
    for pitch in (C4, E4, G4):
        r[0, 0, 0:8, pitch - LOW] = True
    r[0, 0, 8, D4 - LOW] = True
    r[0, 0, 10:16, D4 - LOW] = True
    r[0, 0, 32:48, [C3 - LOW, C4 - LOW]] = True
    r[0, 1, 0:16, C3 - LOW] = True
    return r


# ---------------------------------------------------------------- metrics


def test_metrics_of_a_known_roll():
    r = known_roll()
    assert music.empty_bars(r, 16).tolist() == [0.5, 0.75]
    assert music.used_pitch_classes(r, 16, LOW).tolist() == [2.5, 1.0]  # bar 1: C D E G, bar 3: C
    assert music.qualified_notes(r, 2).tolist() == pytest.approx([6 / 7, 1.0])  # the 1-step D4 is not qualified
    assert music.qualified_notes(r, 7).tolist() == pytest.approx([5 / 7, 1.0])  # nor the 6-step one
    assert music.tonal_distance(r[:, 0], r[:, 0], 4, LOW) == 0


def test_tonal_distance_is_harte_et_al_tonal_centroid_distance():
    r = known_roll()
    # beat 1 alone: C-E-G (1/3 each) against C; by hand from the tonal centroid's three circles
    beat1 = music.tonal_distance(r[:, 0, :4], r[:, 1, :4], 4, LOW)
    angles = (7 * math.pi / 6, 3 * math.pi / 2, 2 * math.pi / 3)
    radii = (1.0, 1.0, 0.5)

    def centroid(weights: dict[int, float]) -> np.ndarray:
        return np.array([sum(w * r * f(k * a) for k, w in weights.items())
                         for r, a in zip(radii, angles) for f in (math.sin, math.cos)])

    ceg, c, d = centroid({0: 1 / 3, 4: 1 / 3, 7: 1 / 3}), centroid({0: 1}), centroid({2: 1})
    assert beat1 == pytest.approx(1.0293, abs=1e-4) and beat1 == pytest.approx(np.linalg.norm(ceg - c), abs=1e-5)
    # the whole phrase: beats 1-2 C-E-G vs C, beats 3-4 D vs C; bars where either track is silent are left out
    whole = (2 * np.linalg.norm(ceg - c) + 2 * np.linalg.norm(d - c)) / 4
    assert music.tonal_distance(r[:, 0], r[:, 1], 4, LOW) == pytest.approx(whole, abs=1e-5)
    assert math.isnan(music.tonal_distance(r[:, 0, 16:32], r[:, 1, 16:32], 4, LOW))  # never together


def test_pitch_classes_are_pitch_classes_not_groups_of_semitones():
    r = torch.zeros(1, 1, 16, 48, dtype=torch.bool)
    r[0, 0, 0, [0, 12, 24]] = True  # C2, C3, C4: one pitch class (the paper's code counts 3)
    assert music.used_pitch_classes(r, 16, LOW).tolist() == [1.0]
    r[0, 0, 0, 1:6] = True  # C2 ... F2: six consecutive semitones, which the paper's code counts as one
    assert music.used_pitch_classes(r, 16, LOW).tolist() == [6.0]
    r[0, 0, 0, :12] = True
    assert music.used_pitch_classes(r, 16, LOW).tolist() == [12.0]
    shifted = torch.zeros(1, 1, 16, 48, dtype=torch.bool)
    shifted[0, 0, 0, 0] = True
    assert music.chroma(shifted[0, 0, 0], 33).argmax() == 9  # index 0 is MIDI 33, an A


def test_drum_pattern_weights_the_16th_grid():
    grid = torch.zeros(1, 96, 4, dtype=torch.bool)  # 24 steps per beat: a 16th note every 6 steps
    grid[0, ::6, 0] = True
    assert float(music.drum_pattern(grid, 24)) == 1.0
    off = torch.zeros(1, 96, 4, dtype=torch.bool)
    off[0, ::6, 0] = off[0, 3::24, 1] = True  # 16 onsets on the grid, 4 halfway between
    assert float(music.drum_pattern(off, 24)) == pytest.approx(16 / 20)
    near = torch.zeros(1, 96, 4, dtype=torch.bool)
    near[0, 1::6, 0] = True  # one step late: the best phase puts them on the grid
    assert float(music.drum_pattern(near, 24)) == 1.0


def test_music_metrics_apply_to_rolls_and_image_metrics_do_not():
    class Data:
        kind, drums = "roll", [False] * 4

    class Ev:
        data = Data()

    class Set:
        real, given = torch.zeros(2, 4, 64, 48), None

    assert music.EmptyBars().applies(Ev(), Set()) and music.TonalDistance().applies(Ev(), Set())
    assert not music.DrumPattern().applies(Ev(), Set())  # no drum track in the chorales
    assert not Metric().applies(Ev(), Set())  # FID and the like: 4-D, but no images
    with pytest.raises(ValueError, match="eval.available.qn.threshold"):
        music.QualifiedNotes(threshold=0)


# ---------------------------------------------------------------- generator structure (spec §2.4 test 4)


def generator(mode: str, **kw) -> Generator:
    """A small G in training mode: batch norm on batch statistics (per channel, so per track), which keeps the
    signal at the scale of training; fresh running statistics with N(0, 0.02) weights would shrink it to ~1e-7."""
    torch.manual_seed(0)
    return Generator(TRACKS, mode=mode, width=4, temporal_hidden=16, **kw)


def latents(G: Generator, n: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {name: torch.randn(n, *shape) for name, shape in G.latents.items()}


def per_track_change(G: Generator, base: dict, **changed) -> list[bool]:
    with torch.no_grad():
        a, b = G(**base), G(**{**base, **changed})
    return [not torch.equal(a[:, k], b[:, k]) for k in range(len(TRACKS))]


@pytest.mark.parametrize("mode, names, size", [("hybrid", ["z", "z_t", "z_i", "z_it"], 32),
                                               ("jamming", ["z_i", "z_it"], 64), ("composer", ["z", "z_t"], 64)])
def test_each_bar_sees_128_latent_values_as_footnote_9(mode, names, size):
    G = generator(mode)
    assert list(G.latents) == names and all(shape[-1] == size for shape in G.latents.values())
    assert all(G.latents[name] == (4, size) for name in ("z_i", "z_it") if name in names)  # one per track
    assert size * len(names) == 128


@pytest.mark.parametrize("mode", ["hybrid", "jamming"])
@pytest.mark.parametrize("private_temporal", [True, False])
def test_a_tracks_own_latents_change_only_that_track(mode, private_temporal):
    G = generator(mode, private_temporal=private_temporal)
    base = latents(G)
    for name in ("z_i", "z_it"):
        for k in range(len(TRACKS)):
            changed = base[name].clone()
            changed[:, k] += 1.0
            assert per_track_change(G, base, **{name: changed}) == [j == k for j in range(len(TRACKS))], (name, k)


@pytest.mark.parametrize("mode", ["hybrid", "composer"])
def test_inter_track_latents_change_every_track(mode):
    G = generator(mode)
    base = latents(G)
    for name in ("z", "z_t"):
        assert per_track_change(G, base, **{name: base[name] + 1.0}) == [True] * len(TRACKS), name


@pytest.mark.parametrize("mode", ["hybrid", "jamming", "composer"])
def test_bar_generator_is_shared_across_bars(mode):
    """With the temporal generators' output held the same for every bar, every bar is the same."""
    G = generator(mode)

    class Constant(nn.Module):
        def forward(self, z):
            return z[..., None].expand(*z.shape, G.bars)

    G.temporal = Constant() if G.temporal is not None else None
    G.track_temporal = Constant() if G.track_temporal is not None else None
    with torch.no_grad():
        x = G(**latents(G))
    bars = x.view(3, 4, G.bars, G.steps, -1)
    for t in range(1, G.bars):
        assert torch.equal(bars[:, :, t], bars[:, :, 0])


@pytest.mark.parametrize("mode, fixed, timed", [("hybrid", "z", "z_t"), ("composer", "z", "z_t"),
                                                 ("jamming", "z_i", "z_it")])
def test_time_dependent_latents_change_bars_differently(mode, fixed, timed):
    G = generator(mode)
    base = latents(G)
    with torch.no_grad():
        x = G(**base).view(3, 4, G.bars, G.steps, -1)
        moved_t = G(**{**base, timed: base[timed] + 1.0}).view_as(x)
        moved = G(**{**base, fixed: base[fixed] + 1.0}).view_as(x)
    # G_temp's output differs per bar, so its bars change by different amounts
    change_t = (moved_t - x).flatten(3)
    assert all(not torch.allclose(change_t[:, :, t], change_t[:, :, 0]) for t in range(1, G.bars))
    # a time-independent latent enters every bar
    assert all((moved - x)[:, :, t].abs().amax() > 0 for t in range(G.bars))
    # the time-dependent latents reach G_bar only through G_temp: one vector per bar
    temporal = G.temporal if mode != "jamming" else G.track_temporal
    z = base[timed].flatten(1)
    assert temporal(z).shape == (3, z.shape[1], G.bars)


def test_output_is_tanh_and_binarised_at_zero():
    G = generator("hybrid")
    with torch.no_grad():
        x = G(**latents(G))
    assert x.shape == (3, 4, 64, 48) and x.abs().max() < 1 and (x > 0).any() and (x < 0).any()
    images = roll_images(x > 0, 16, scale=2)
    assert images.shape == (3, 3, 96, 128) and images.min() >= -1 and images.max() <= 1
    # a note of track 0 (red) at the lowest pitch, time 5 -> the bottom row, column 5, red only
    roll = torch.zeros(1, 4, 64, 48, dtype=torch.bool)
    roll[0, 0, 5, 0] = True
    image = roll_images(roll, 16, scale=1)[0] * 0.5 + 0.5
    assert image[:, -1, 5].tolist() == pytest.approx([1.0, 0.25, 0.25]) and image[:, 0, 5].sum() == 0


def test_bad_sizes_and_modes_are_config_errors():
    with pytest.raises(ConfigError, match="model.generator.mode"):
        Generator(TRACKS, mode="band")
    with pytest.raises(ConfigError, match="dataset.pitches"):
        Generator(TRACKS, pitches=50)
    with pytest.raises(ConfigError, match="model.discriminator.critics"):
        Discriminator(TRACKS, critics=3)


# ---------------------------------------------------------------- critics


def test_jamming_critics_each_see_one_track():
    torch.manual_seed(0)
    D = Discriminator(TRACKS, width=4, critics=4)
    x = torch.randn(2, 4, 64, 48)
    base = D(x)
    assert base.shape == (2, 4)
    for k in range(4):
        y = x.clone()
        y[:, k] += 1.0
        assert [not torch.equal(a, b) for a, b in zip(D(y).T, base.T)] == [j == k for j in range(4)]
    one = Discriminator(TRACKS, width=4)
    assert one(x).shape == (2,) and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in one.modules())


def test_gradient_penalty_is_per_critic():
    """Spec §2.4 test 5 for linear critics D_k(x) = w_k . x_k: the penalty is lambda (||w|| - 1)^2, per critic."""
    class Linear(nn.Module):
        def __init__(self, w: torch.Tensor):
            super().__init__()
            self.w, self.critics = w, len(w)

        def forward(self, x):
            return (x.reshape(len(x), self.critics, -1) * self.w).sum(2).squeeze(1)

    real, fake = torch.randn(5, 2, 3, 4), torch.randn(5, 2, 3, 4)
    w = torch.zeros(2, 12)
    w[0, 0], w[1, :2] = 3.0, torch.tensor([0.6, 0.8])  # norms 3 and 1
    assert float(gradient_penalty(Linear(w), real, fake, lambda_=10.0)) == pytest.approx(10 * (2 ** 2 + 0) / 2)
    one = w.flatten()[None]  # one critic over both slices: norm sqrt(10)
    assert float(gradient_penalty(Linear(one), real, fake)) == pytest.approx(10 * (math.sqrt(10) - 1) ** 2)


# ---------------------------------------------------------------- data and MIDI


def test_a_missing_music_package_names_the_extra():
    from gan_lab.data.music import import_optional

    with pytest.raises(ConfigError, match=r"no_such_music_package is not installed.*pip install 'gan-lab\[music\]'"):
        import_optional("no_such_music_package")


def test_missing_npz_says_where_it_looked_and_how_to_get_it(tmp_path):
    args = dict(tracks=["b"], programs=[33], drums=[False])
    with pytest.raises(DataNotFoundError, match=f"looked for {tmp_path / 'none.npz'}.*train_x_lpd_5_phr.npz"):
        PianorollNPZ(tmp_path / "none.npz", **args)
    with pytest.raises(DataNotFoundError, match="dataset.path"):
        PianorollNPZ(None, **args)


def test_npz_phrases_become_track_major_rolls(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.random((3, 2, 8, 12, 2)) > 0.8  # (phrases, bars, steps, pitches, tracks): 2 steps per beat
    np.savez_compressed(tmp_path / "x.npz", shape=data.shape, nonzero=np.array(data.nonzero()))
    ds = PianorollNPZ(tmp_path / "x.npz", tracks=["a", "b"], programs=[0, 0], drums=[False, True], beat_resolution=2,
                      bars=2, lowest_pitch=24, pitches=12)
    assert ds.kind == "roll" and ds.steps_per_bar == 8 and ds.pitches == 12
    real = ds.examples(3)["real"]
    expected = torch.from_numpy(data).permute(0, 4, 1, 2, 3).reshape(3, 2, 16, 12)
    assert torch.equal(real > 0, expected) and set(real.unique().tolist()) <= {-1.0, 1.0}
    with pytest.raises(ValueError, match="dataset.pitches=84"):
        PianorollNPZ(tmp_path / "x.npz", tracks=["a", "b"], programs=[0, 0], drums=[False, True], beat_resolution=2,
                     bars=2)


def test_midi_file_plays_the_roll(tmp_path):
    pretty_midi = pytest.importorskip("pretty_midi", reason="pretty_midi (the music extra) is not installed")
    from gan_lab.data.music import write_midi

    r = known_roll()[0].float() * 2 - 1
    path = write_midi(r, tmp_path / "x.mid", programs=[52, 33], drums=[False, False], names=["s", "b"],
                      beat_resolution=4, lowest_pitch=LOW, tempo=120.0)
    pm = pretty_midi.PrettyMIDI(str(path))
    assert [i.program for i in pm.instruments] == [52, 33]
    step = 60 / (120 * 4)
    got = sorted((n.pitch, round(n.start / step), round(n.end / step)) for n in pm.instruments[0].notes)
    assert got == sorted([(C4, 0, 8), (E4, 0, 8), (G4, 0, 8), (D4, 8, 9), (D4, 10, 16), (C3, 32, 48), (C4, 32, 48)])
    assert [(s, e, p) for s, e, p in notes(known_roll()[0, 1].numpy())] == [(0, 16, C3 - LOW)]


def chorale(signature: str = "4/4"):
    """Four parts named SATB: a one-beat pickup, a note tied over a bar line, a repeated note."""
    m21 = pytest.importorskip("music21", reason="music21 (pip install 'gan-lab[music]') is not installed")
    score = m21.stream.Score()
    for name, shift in zip(("Soprano", "Alto", "Tenor", "Bass"), (0, -5, -12, -24)):
        part = m21.stream.Part()
        part.partName = name
        bars = [[("C5", 1)], [("D5", 4, "start")], [("D5", 2, "stop"), ("E5", 2)], [("E5", 4)]]
        for number, content in enumerate(bars):
            measure = m21.stream.Measure(number=number)
            if number == 0:
                measure.append(m21.meter.TimeSignature(signature))
            for pitch, length, *tie in content:
                n = m21.note.Note(pitch, quarterLength=length)
                n.pitch.midi += shift
                if tie:
                    n.tie = m21.tie.Tie(tie[0])
                measure.append(n)
            part.append(measure)
        score.insert(0, part)
    return score


def test_chorale_recipe_pads_the_pickup_merges_ties_and_rests_one_step():
    from gan_lab.data.music import chorale_roll

    roll = chorale_roll(chorale(), 4, LOW, 48)
    assert roll.shape == (4, 64, 48)
    soprano = [(s, e, p + LOW) for s, e, p in notes(roll[0])]
    # pickup of 1 beat padded by 3 beats (12 steps); D5 tied over the bar line: one 6-beat note; each note
    # ends one step early, so the two E5s stay two notes
    assert sorted(soprano) == [(12, 15, 72), (16, 39, 74), (40, 47, 76), (48, 63, 76)]
    assert sorted(notes(roll[3]))[0] == (12, 15, 48 - LOW)  # the bass, two octaves down
    assert chorale_roll(chorale("3/4"), 4, LOW, 48) is None  # 4/4 only


def test_bach_chorales_phrases(tmp_path):
    pytest.importorskip("music21", reason="music21 (pip install 'gan-lab[music]') is not installed")
    cfg = compose_train(["model=musegan"]).dataset
    from hydra.utils import instantiate

    ds = instantiate(cfg)
    real = ds.tensors["real"]
    assert ds.kind == "roll" and real.shape == (937, 4, 64, 48) and set(real.unique().tolist()) == {0, 255}
    assert ds.tracks == TRACKS and ds.steps_per_bar == 16 and ds.lowest_pitch == 36
    # each voice within its range (spec §2.6: S 57-81, A 53-74, T 48-69, B 36-64), never empty for a whole phrase
    ranges = {"soprano": (57, 81), "alto": (53, 74), "tenor": (48, 69), "bass": (36, 64)}
    for k, name in enumerate(TRACKS):
        used = (real[:, k] > 0).any(0).any(0).nonzero().flatten() + 36
        assert (int(used.min()), int(used.max())) == ranges[name]
    assert (real > 0).flatten(2).any(2).all()
    assert len(instantiate({**cfg, "count": 10})) == 10


def test_sample_format_midi_writes_playable_files(tmp_path):
    pretty_midi = pytest.importorskip("pretty_midi", reason="pretty_midi (the music extra) is not installed")
    mido = pytest.importorskip("mido", reason="mido (pretty_midi's dependency) is not installed")
    pytest.importorskip("music21", reason="music21 (pip install 'gan-lab[music]') is not installed")
    from gan_lab.train import run
    from tests.test_cli import gan_lab

    run(compose_train([*TINY, "model=musegan", "dataset.count=64", "train.steps=2"]), tmp_path / "run")
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", "format=midi", "n=2", f"out={tmp_path / 'midi'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    files = sorted((tmp_path / "midi").glob("*.mid"))
    assert [f.name for f in files] == ["000.mid", "001.mid"]
    tracks = mido.MidiFile(files[0]).tracks[1:]  # after the tempo track: one per voice, empty ones too
    assert [[m.name for m in t if m.type == "track_name"] for t in tracks] == [[name] for name in TRACKS]
    assert [[m.program for m in t if m.type == "program_change"] for t in tracks] == [[52]] * 4
    pm = pretty_midi.PrettyMIDI(str(files[0]))  # (it reads back only the voices that play)
    assert all(36 <= n.pitch < 84 for i in pm.instruments for n in i.notes) and pm.get_end_time() <= 16 * 0.6 + 1e-6
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", "format=wav", cwd=tmp_path)
    assert out.returncode == 1 and "format=wav" in out.stdout + out.stderr


def test_format_midi_needs_a_model_that_writes_it(tmp_path):
    from gan_lab.train import run
    from tests.test_cli import gan_lab

    run(compose_train([*TINY, "train.steps=2", "dataset.count=32"]), tmp_path / "run")
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", "format=midi", cwd=tmp_path)
    assert out.returncode == 1 and "format=midi: NoiseToImage writes png grids" in out.stdout + out.stderr
