"""MuseGAN of Dong, Hsiao, Yang and Yang 2018, "MuseGAN: Multi-track Sequential Generative Adversarial
Networks for Symbolic Music Generation and Accompaniment" (AAAI, arXiv 1709.06298).

A sample is a multi-track piano roll of T bars (data kind ``roll``: (tracks M, T * steps per bar, pitches),
"Proposed Model: Data Representation"). Sections of "Proposed Model":

- "Modeling the Multi-track Interdependency" (Fig. 3): the *jamming* model, one generator and one critic per
  track, each generator from its private latent z_i; the *composer* model, one generator of all M tracks
  from one shared z, one critic; the *hybrid* model, one generator per track fed the shared z and its own
  z_i, one critic of all tracks.
- "Modeling the Temporal Structure: Generation from Scratch" (Eq. 3): a temporal generator G_temp maps a
  latent to one vector per bar, and a bar generator G_bar, shared by all bars, makes each bar from them.
- "MuseGAN" (Eq. 5, Fig. 5): both combined. The bar of track i at bar t comes from
  G_bar,i(z, G_temp(z_t)^(t), z_i, G_temp,i(z_i,t)^(t)): inter-track time-independent z, inter-track
  time-dependent z_t through G_temp, intra-track time-independent z_i, intra-track time-dependent z_i,t
  through the track's own G_temp,i (the formula's notation as recalled, not re-read; the four kinds of latent
  and the three models as the authors' model page, salu133445.github.io/musegan/model). The latents total
  128 (footnote 9): 4 x 32 for the hybrid model, 2 x 64 (z_i, z_i,t) for jamming and (z, z_t) for composer,
  as the paper's code (v1 ``config.py``).
- "Implementation: Model Settings": WGAN-GP (lambda 10), G updated once every five critic updates, batch
  norm only in G (the critic has none: the penalty is per sample). The loss and penalty are the lab's
  (``loss=wasserstein``, ``tricks/gradient_penalty``); Adam lr 2e-4, betas (0.5, 0.9) from the paper's
  code (v1 ``config.py``). Outputs are tanh, binarised at 0 for the metrics and MIDI files.

Sizes are the small-scale version of the paper's (v1 ``modules.py``: ``PhraseGenerator``, ``BarGenerator``,
``BarDiscriminator``, ``PhraseDiscriminator``; 96 steps x 84 pitches there): G_temp is a transposed
convolution to 2 bars then to ``bars`` (256 hidden channels); G_bar a transposed convolution to
(steps / 8, 1) from the bar's 128-d input, three stride-2 transposed convolutions along time, then one along
pitch to (steps, pitches / 12) and a stride-12 one to (steps, pitches); the critic mirrors it per bar
(pitch first, then time) and a convolution over the bar features, then a linear output.

Departures of the paper's code (v1), each an option here:

- the jamming model has one critic of all tracks in the code, M critics in the paper: ``critics`` in
  :class:`Discriminator` (M = the paper; the critics are grouped convolutions, so critic i sees track i
  only, and the gradient penalty is taken per critic);
- the code's "private" G_temp,i of the hybrid model reuse the weights of the shared G_temp:
  ``private_temporal=false`` (the paper: true; one G_temp,i per track, grouped convolutions);
- the code trains the critic 100 times per G step for the first 25 G steps and every 500th:
  ``boost_critic=true`` (the paper only says five).

Other code details kept out: latents drawn from N(0, 0.1^2) (here N(0, 1): the batch norm after G's first
layers removes the scale), and the bass track made monophonic (arg-max pitch) before evaluation.
"""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.data.music import roll_images
from gan_lab.errors import ConfigError
from gan_lab.models.base import Grid, Phase
from gan_lab.models.blocks import dcgan_init
from gan_lab.models.noise import NoiseToImage, slerp

MODES = ("hybrid", "jamming", "composer")


@torch.no_grad()
def _init(module: nn.Module) -> None:
    """:func:`dcgan_init` (N(0, 0.02) weights, as v1's truncated normal), also for the 1-D layers of G_temp
    and the phrase critic."""
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm1d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    else:
        dcgan_init(module)


def _check_sizes(bars: int, steps_per_bar: int, pitches: int) -> None:
    if bars < 2:
        raise ConfigError(f"dataset.bars must be at least 2 for the temporal generator, got {bars}")
    if steps_per_bar % 8:
        raise ConfigError(f"MuseGAN's bar networks halve time three times: steps per bar (4 x "
                          f"dataset.beat_resolution) must be a multiple of 8, got {steps_per_bar}")
    if pitches % 12:
        raise ConfigError(f"MuseGAN's bar networks work in octaves: dataset.pitches must be a multiple of 12, "
                          f"got {pitches}")


def _up(a: int, b: int, kernel, stride=1, groups: int = 1, last: bool = False) -> list[nn.Module]:
    """A grouped transposed convolution, then batch norm and ReLU (tanh for the ``last`` layer)."""
    conv = nn.ConvTranspose2d(groups * a, groups * b, kernel, stride, groups=groups, bias=last)
    return [conv, nn.Tanh()] if last else [conv, nn.BatchNorm2d(groups * b), nn.ReLU(inplace=True)]


class TemporalGenerator(nn.Module):
    """G_temp: ``groups`` latents of ``dim`` (B, groups * dim) -> one vector per bar (B, groups * dim, bars);
    each group its own network (grouped convolutions). v1 ``PhraseGenerator``: a transposed convolution to
    2 steps (``hidden`` channels), another to ``bars``, batch norm and ReLU after each."""

    def __init__(self, dim: int, bars: int, hidden: int = 256, groups: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose1d(groups * dim, groups * hidden, 2, groups=groups, bias=False),
            nn.BatchNorm1d(groups * hidden), nn.ReLU(inplace=True),
            nn.ConvTranspose1d(groups * hidden, groups * dim, bars - 1, groups=groups, bias=False),
            nn.BatchNorm1d(groups * dim), nn.ReLU(inplace=True))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[..., None])


class BarGenerator(nn.Module):
    """G_bar: ``groups`` bar generators (one per track, or one for all), (B, groups * in_dim) ->
    (B, groups * out_per_group, steps, pitches) in (-1, 1)."""

    def __init__(self, in_dim: int, steps: int, pitches: int, width: int = 32, groups: int = 1,
                 out_per_group: int = 1):
        super().__init__()
        w = [8 * width, 8 * width, 4 * width, 2 * width, width]
        self.net = nn.Sequential(
            *_up(in_dim, w[0], (steps // 8, 1), groups=groups),  # the "linear" layer, onto (steps / 8, 1)
            *(layer for a, b in zip(w[:3], w[1:4]) for layer in _up(a, b, (2, 1), (2, 1), groups)),  # time x8
            *_up(w[3], w[4], (1, pitches // 12), groups=groups),  # pitch: octave positions
            *_up(w[4], out_per_group, (1, 12), (1, 12), groups, last=True))  # pitch: the 12 semitones

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x[..., None, None])


class Generator(nn.Module):
    """The MuseGAN generator of one ``mode`` (hybrid, jamming, composer) for ``tracks`` (names) of ``bars``
    bars of 4 x ``beat_resolution`` steps and ``pitches`` pitches. ``latents``: name -> shape of each
    latent input per sample: ``z`` and ``z_t`` (inter-track), ``z_i`` and ``z_it`` (intra-track, (M, d)).
    ``forward(**latents)`` -> (B, M, bars * steps, pitches)."""

    def __init__(self, tracks, bars: int = 4, beat_resolution: int = 4, pitches: int = 48, mode: str = "hybrid",
                 latent_dim: int = 128, temporal_hidden: int = 256, width: int = 32,
                 private_temporal: bool = True):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"model.generator.mode must be one of {list(MODES)}, got {mode!r}")
        self.mode, self.m, self.bars, self.steps = mode, len(tracks), bars, 4 * beat_resolution
        _check_sizes(bars, self.steps, pitches)
        parts = 4 if mode == "hybrid" else 2
        if latent_dim % parts:
            raise ConfigError(f"model.generator.latent_dim={latent_dim} must split into {parts} equal latents "
                              f"({mode})")
        d = self.d = latent_dim // parts
        self.z_dim = latent_dim  # per bar: the bar generator's input
        inter, intra = mode in ("hybrid", "composer"), mode in ("hybrid", "jamming")
        self.latents = {**({"z": (d,), "z_t": (d,)} if inter else {}),
                        **({"z_i": (self.m, d), "z_it": (self.m, d)} if intra else {})}
        self.temporal = TemporalGenerator(d, bars, temporal_hidden) if inter or not private_temporal else None
        self.private_temporal = intra and private_temporal
        self.track_temporal = TemporalGenerator(d, bars, temporal_hidden, groups=self.m) if self.private_temporal \
            else None
        groups = self.m if intra else 1
        self.bar = BarGenerator(latent_dim, self.steps, pitches, width, groups, 1 if intra else self.m)
        self.apply(_init)

    def forward(self, z=None, z_t=None, z_i=None, z_it=None) -> torch.Tensor:
        b, m, bars = len(next(x for x in (z, z_i) if x is not None)), self.m, self.bars
        per_bar = []  # (B, bars, [M,] d) pieces of each bar's input
        if z is not None:  # inter-track: z for every bar, G_temp(z_t) one vector per bar
            per_bar += [z[:, None].expand(b, bars, -1), self.temporal(z_t).transpose(1, 2)]
        if z_i is not None:  # intra-track: z_i for every bar, G_temp,i(z_it) per track and bar
            if self.private_temporal:
                track_t = self.track_temporal(z_it.flatten(1)).view(b, m, self.d, bars)
            else:
                # one call per track, as the code's reused network: batch statistics stay per track
                track_t = torch.stack([self.temporal(z_it[:, k]) for k in range(m)], 1)
            if z is not None:
                per_bar = [x[:, :, None].expand(b, bars, m, -1) for x in per_bar]
            per_bar += [z_i[:, None].expand(b, bars, m, -1), track_t.permute(0, 3, 1, 2)]
        x = torch.cat(per_bar, -1).reshape(b * bars, -1)  # grouped per track when there are per-track inputs
        out = self.bar(x)  # (B * bars, M, steps, pitches)
        return out.view(b, bars, m, self.steps, -1).transpose(1, 2).flatten(2, 3)


def _down(a: int, b: int, kernel, stride=1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(groups * a, groups * b, kernel, stride, groups=groups), nn.LeakyReLU(0.2, inplace=True)]


class Discriminator(nn.Module):
    """The critic: per bar (shared across bars, v1 ``BarDiscriminator``) a convolution of each octave, one
    across octaves, three stride-2 ones along time; then (v1 ``PhraseDiscriminator``) a convolution over
    pairs of adjacent bars' features and a linear output. LeakyReLU 0.2, no normalisation.

    ``critics``: 1 (one critic of all tracks) or the number of tracks (the paper's jamming model: critic i
    sees track i only; grouped convolutions); the output is (B,) for one, (B, critics) for several. The
    gradient penalty reads ``critics`` and penalises each critic's gradient on its own track."""

    def __init__(self, tracks, bars: int = 4, beat_resolution: int = 4, pitches: int = 48, width: int = 32,
                 critics: int = 1):
        super().__init__()
        m, steps = len(tracks), 4 * beat_resolution
        _check_sizes(bars, steps, pitches)
        if critics not in (1, m):
            raise ConfigError(f"model.discriminator.critics must be 1 or the number of tracks ({m}), got {critics}")
        self.critics, self.bars, self.steps = critics, bars, steps
        g, w = critics, [2 * width, 4 * width, 4 * width, 8 * width, 8 * width]
        self.bar = nn.Sequential(
            *_down(m // g, w[0], (1, 12), (1, 12), g), *_down(w[0], w[1], (1, pitches // 12), groups=g),
            *(layer for a, b in zip(w[1:4], w[2:5]) for layer in _down(a, b, (2, 1), (2, 1), g)))
        self.feature_len = steps // 8
        self.phrase = nn.Sequential(
            nn.Conv1d(g * w[4] * self.feature_len, g * w[4], 2, groups=g), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv1d(g * w[4], g, bars - 1, groups=g))  # the linear output of each critic
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, m, _, p = x.shape
        bars = x.reshape(b, m, self.bars, self.steps, p).transpose(1, 2).flatten(0, 1)  # (B * bars, M, steps, P)
        h = self.bar(bars)  # (B * bars, g * C, steps / 8, 1): each group's channels together
        h = h.reshape(b, self.bars, self.critics, -1).permute(0, 2, 3, 1).flatten(1, 2)  # (B, g * C * len, bars)
        return self.phrase(h).flatten(1).squeeze(1)


class MuseGANTask(NoiseToImage):
    """The MuseGAN family on piano rolls: D (a critic) against the generator of the chosen mode under the
    configured loss (the paper's WGAN-GP: ``loss=wasserstein`` and the gradient penalty trick).

    ``music``: what turns a sample into sound and pictures, from the dataset's config: ``tracks`` (names),
    ``programs``, ``drums``, ``beat_resolution``, ``lowest_pitch``, ``tempo``. Samples are tanh outputs;
    :meth:`save_sample` writes them binarised at 0."""

    data_kinds = ("roll",)
    sample_formats = ("midi",)

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: nn.Module, music: dict,
                 reuse_fake: bool = False, boost_critic: bool = False, grid_scale: int = 3):
        super().__init__(generator, discriminator, loss, reuse_fake)
        self.music, self.boost_critic, self.grid_scale = dict(music), boost_critic, grid_scale

    def phases(self, step: int, n_critic: int) -> list[Phase]:
        """n_critic critic steps per G step; with ``boost_critic`` 100 for the first 25 steps and every
        500th (the paper's code, after WGAN's reference code)."""
        if self.boost_critic and (step <= 25 or step % 500 == 0):
            n_critic = 100
        return super().phases(step, n_critic)

    def sample_inputs(self, n: int, **given) -> dict[str, torch.Tensor]:
        """The generator's latents (``Generator.latents``), each N(0, I), unless ``given``."""
        return {name: given[name] if given.get(name) is not None else
                self.draw_rows(torch.randn, n, *shape)
                for name, shape in self.G.latents.items()}

    def generate(self, G: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return G(**inputs)

    def interpolation(self, rows: int, steps: int) -> dict[str, torch.Tensor]:
        """Every latent on the great circle between two draws per row (:func:`slerp`)."""
        ends = [self.sample_inputs(rows) for _ in range(2)]
        t = torch.linspace(0, 1, steps, device=self.device)
        return {name: slerp(a.flatten(1), ends[1][name].flatten(1), t).flatten(0, 1).view(rows * steps, *a.shape[1:])
                for name, a in ends[0].items()}

    def visuals(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> dict[str, Grid]:
        """Piano rolls of the fixed latents, binarised: one colour per track, high pitches up, bar lines grey."""
        rolls = self.generate(G, fixed) > 0
        images = roll_images(rolls, 4 * self.music["beat_resolution"], self.grid_scale)
        return {"fixed": Grid(images, max(1, min(4, len(images))))}

    def save_sample(self, sample: torch.Tensor, path, format: str):
        """One sample as a MIDI file (``format`` midi) at ``path`` with the suffix ``.mid``."""
        from gan_lab.data.music import write_midi

        m = self.music
        return write_midi(sample, path.with_suffix(".mid"), programs=m["programs"], drums=m["drums"],
                          names=m["tracks"], beat_resolution=m["beat_resolution"], lowest_pitch=m["lowest_pitch"],
                          tempo=m["tempo"])
