"""The model zoo: train every configuration of a suite with the same seed and steps, evaluate
each with ``gan-lab eval``, print a table, and write the table and the last sample grids into
``docs/results.md`` (each suite owns the section between its markers; the rest of the file is kept).

    python scripts/zoo.py toy2d                 # ring of 8: modes covered, high-quality fraction
    python scripts/zoo.py mnist                 # MNIST: classifier-FID (offline), after `gan-lab train-classifier`
    python scripts/zoo.py lapgan                # MNIST: LAPGAN vs a DCGAN of similar size, classifier-FID
    python scripts/zoo.py translation           # shapes outline <-> filled: paired L1/PSNR/SSIM, cycle L1
    python scripts/zoo.py summer2winter         # CycleGAN on summer2winter_yosemite: cycle L1 and grids
    python scripts/zoo.py sr                    # 4x super-resolution: SRResNet, SRGAN vs bicubic, PSNR-Y / SSIM-Y
    python scripts/zoo.py text                  # shapes_text: GAN-INT-CLS vs StackGAN, caption accuracy/retrieval
    python scripts/zoo.py project               # iGAN projection of real shapes vs G's own samples, an edit
    python scripts/zoo.py anogan                # MNIST one-class: AnoGAN search vs f-AnoGAN encoder, AUROC per digit
    python scripts/zoo.py musegan               # Bach chorales: MuseGAN's EB/UPC/QN/TD beside the data and the paper
    python scripts/zoo.py energy                # MNIST: DCGAN vs EBGAN vs BEGAN, classifier-FID, BEGAN's M_global curve
    python scripts/zoo.py bigan                 # MNIST: BiGAN and ALI encoders, linear probe and reconstruction
    python scripts/zoo.py toy2d --steps 200 --only nonsaturating,wgan_gp --out /tmp/zoo --doc /tmp/results.md

Every run goes through the ``gan-lab`` command exactly as a user would type it; the command of each
row is in the document. Runs already finished in ``--out`` are evaluated again, not retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gan_lab.engine import checkpoint
from zoo_scores import (HELDOUT_CAPTIONS, MUSEGAN_PAPER, PROJECT, PROJECTED, SET14_X4, TEST_PAIRS,  # scripts/
                        anomaly_scores, bach_data, bigan_readme, black, equilibrium, most_frequent_guess,
                        music_generated, musegan_paper, paper, projection_gap, published, real_captioned,
                        sizes_and_levels, supervised, untranslated)  # zoo_scores.py

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    """A row with more than training overrides (a plain list of overrides is ``Row(overrides)``)."""
    train: list[str] | None  # its overrides of `gan-lab train`; None: nothing is trained (a baseline)
    score: Callable[[Path | None], dict] | None = None  # values computed here from the run directory; its
    # "pictures", (alt text, file) pairs, are shown beside the sample grids
    # An override "key=@<row>" names another row's run directory (StackGAN Stage II on the Stage-I row's run).
    note: str = ""  # a line under the table, formatted with the row's values


@dataclass
class Suite:
    title: str
    about: str  # one paragraph for the document: data, networks, budget, metric definitions
    common: list[str]  # overrides of every run
    rows: dict[str, list[str] | Row]  # row name -> its own overrides
    eval: list[str] | None  # overrides of `gan-lab eval`; None: no eval (the rows' scores say everything)
    metrics: list[str]  # report keys shown as columns
    steps: int | None  # None: each model config's own train.steps (a "steps x batch" column says which)
    env: dict[str, str] = field(default_factory=dict)


DATA = {"GAN_LAB_DATA": os.environ.get("GAN_LAB_DATA", str(REPO.parent / "shared" / "data"))}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Wasserstein rows on MLPs spell out their papers' optimizers (the model configs of the same name
# build DCGAN networks for images).
FRESH_Z = ["+model.reuse_fake=false"]  # Algorithm 1 of the WGAN family: G's step draws its own z
RMSPROP = ["optim.G._target_=torch.optim.RMSprop", "~optim.G.betas", "optim.G.lr=5e-5",
           "optim.D._target_=torch.optim.RMSprop", "~optim.D.betas", "optim.D.lr=5e-5"]
# DCGAN's Adam in place of a model's SGD (LAPGAN's).
ADAM_DCGAN = [key for p in ("G", "D") for key in (f"optim.{p}._target_=torch.optim.Adam", f"~optim.{p}.momentum",
                                                   f"optim.{p}.lr=2e-4", f"+optim.{p}.betas=[0.5,0.999]")]
ADAM_GP = ["optim.G.lr=1e-4", "optim.G.betas=[0.0,0.9]", "optim.D.lr=1e-4", "optim.D.betas=[0.0,0.9]"]
# The anogan suite's `gan-lab anomaly` settings: the search on a stratified subset with a reduced Gamma, the encoder on
# the whole test split (see the suite's text).
ANOMALY_SEARCH = ["count=200", "steps=100", "batch_size=200"]
ANOMALY_ENCODER = ["encoder.iterations=250"]

SUITES = {
    "toy2d": Suite(
        title="Ring of 8 Gaussians (toy2d)",
        about=(
            "`dataset=toy2d` (8 modes on a circle of radius 2, std 0.02; Metz et al. 2017, Srivastava et al. "
            "2017) with the MLP GAN of `model=gan` at the toy-experiment size of Metz et al. 2017 (G 2x128 ReLU, "
            "D 2x128 maxout units, no dropout), batch 256, seed 0, the same number of generator steps for every "
            "row. *Modes covered*: modes that are the nearest mode of at least one high-quality sample; "
            "*high-quality fraction*: samples within 3 standard deviations of a mode centre (VEEGAN, §5.1), "
            "from 2500 samples of `gan-lab eval`. One seed per row: differences of a mode or two are within "
            "seed-to-seed variation. *train s*: training seconds on a shared 2-core CPU (other jobs ran beside "
            "some rows)."),
        common=["model=gan", "dataset=toy2d", "train.batch_size=256", "model.generator.hidden=[128,128]",
                "model.discriminator.units=[128,128]", "model.discriminator.input_dropout=0",
                "model.discriminator.dropout=0"],
        rows={
            "nonsaturating": ["loss=nonsaturating"],
            "minimax": ["loss=minimax"],
            "maxlikelihood": ["loss=maxlikelihood"],
            "leastsquares (LSGAN)": ["loss=leastsquares"],
            "hinge": ["loss=hinge"],
            "wgan (clipping)": ["loss=wasserstein", "tricks=[weight_clipping]", "train.n_critic=5", *RMSPROP, *FRESH_Z],
            "wgan_gp": ["loss=wasserstein", "tricks=[gradient_penalty]", "train.n_critic=5", *ADAM_GP, *FRESH_Z],
            "wgan_div": ["loss=wasserstein", "tricks=[wgan_div]", "train.n_critic=5", *ADAM_GP, *FRESH_Z],
            "r1": ["tricks=[r1]"],
            "spectral_norm": ["tricks=[spectral_norm]"],
            "spectral_norm + hinge + ttur": ["loss=hinge", "tricks=[spectral_norm,ttur]"],
            "feature_matching": ["tricks=[feature_matching]"],
            "minibatch_discrimination": ["tricks=[minibatch_discrimination]"],
            "minibatch_stddev": ["tricks=[minibatch_stddev]"],
            "historical_averaging": ["tricks=[historical_averaging]"],
            "label_smoothing": ["tricks=[label_smoothing]"],
            "instance_noise": ["tricks=[instance_noise]"],
            "ema": ["tricks=[ema]"],
        },
        eval=["eval.num_samples=2500"],
        metrics=["modes covered", "high-quality fraction"],
        steps=1500,
    ),
    "mnist": Suite(
        title="MNIST, classifier-FID",
        about=(
            "`dataset=mnist` (32 px), each model's own networks and optimizers, batch 64, seed 0, the same "
            "number of generator steps for every row. *classifier-FID*: FID computed on the features of "
            "gan-lab's MNIST classifier (`gan-lab train-classifier dataset=mnist`, about 98.6% test "
            "accuracy) between 2000 samples and the test split. It ranks models on this machine without the "
            "Inception weights; it is not comparable to published (Inception) FID. *classifier_accuracy*: the "
            "semi-supervised GAN's D as a classifier on the test split (its `model.labelled` default: 40 labels). "
            "*train s*: training seconds on a shared 2-core CPU (other jobs ran beside some rows). "
            "Progressive GAN is left out: its schedule reaches 32 px only after 1500 steps, and its 32 px "
            "steps take about 1 s on this CPU."),
        common=["dataset=mnist", "train.batch_size=64"],
        rows={
            "dcgan": ["model=dcgan"],
            "lsgan": ["model=lsgan"],
            "dcgan + hinge": ["model=dcgan", "loss=hinge"],
            "wgan": ["model=wgan"],
            "wgan_gp": ["model=wgan_gp"],
            "sagan": ["model=sagan"],
            "infogan": ["model=infogan"],
            "ssgan": ["model=ssgan"],
            "dcgan + feature_matching": ["model=dcgan", "tricks=[feature_matching]"],
            "dcgan + minibatch_discrimination": ["model=dcgan", "tricks=[minibatch_discrimination]"],
            "dcgan + label_smoothing": ["model=dcgan", "tricks=[label_smoothing]"],
        },
        eval=["eval.features=classifier", "eval.num_samples=2000"],  # every metric that applies
        metrics=["classifier-FID", "classifier_accuracy"],
        steps=600,
        env=DATA,
    ),
    "lapgan": Suite(
        title="LAPGAN vs DCGAN on MNIST, classifier-FID",
        about=(
            "`dataset=mnist` (28 px digits resized to 32 px), batch 64, seed 0, the same number of steps for every "
            "row, one thread (`OMP_NUM_THREADS=1`) of a shared 2-core CPU (other jobs ran beside both rows, so "
            "*train s* is only indicative). *lapgan*: `experiment=lapgan_mnist`, a 3-level pyramid 8 -> 16 -> 32 "
            "(fully connected 8 px GAN, G 1200 / D 600 units; convolutional residual levels of width 32), each level "
            "trained on the real pyramid, the paper's SGD (lr 0.02, momentum 0.5 held, not raised to 0.8); *lapgan + Adam "
            "2e-4*: the same with DCGAN's Adam (lr 2e-4, beta1 0.5). *dcgan*: `model=dcgan` at width 64 (the size of "
            "`experiment=dcgan_mnist`), a DCGAN of similar parameter count. *classifier-FID*: FID on the "
            "features of gan-lab's MNIST classifier (`gan-lab train-classifier dataset=mnist`) between 2000 samples and "
            "the test split, as in the MNIST table; not comparable to published (Inception) FID. *D acc <size> px*: "
            "each pyramid level's D accuracy on its training batches (real logit > 0, fake < 0) over the last 50 steps; "
            "0.5 is a D that cannot tell. *largest class share*: the most frequent digit among the 2000 samples (by the "
            "classifier) and its share, 0.1 for balanced samples: a measure of mode collapse. In these runs LAPGAN's weak "
            "part is its fully connected 8 px level: its samples cover few digits (see the pyramid grids: each row starts "
            "with the 8 px sample, the finer levels add strokes to whatever it drew), while the convolutional DCGAN "
            "learns all ten within the budget. A short run, one seed: no seed-to-seed spread is known. The paper's numbers "
            "are of another kind: on CIFAR-10, human observers mistook LAPGAN samples for real images about 40% of "
            "the time against 10% for a GAN baseline (Denton et al. 2015, abstract), and Parzen-window "
            "log-likelihoods (which gan-lab does not use: they are unreliable in high dimension)."),
        common=["dataset=mnist", "train.batch_size=64"],
        rows={
            "lapgan": Row(["experiment=lapgan_mnist"], score=sizes_and_levels),
            "lapgan + Adam 2e-4": Row(["experiment=lapgan_mnist", *ADAM_DCGAN], score=sizes_and_levels),
            "dcgan (width 64)": Row(["model=dcgan", "model.generator.width=64", "model.discriminator.width=64"],
                                    score=sizes_and_levels),
        },
        eval=["eval.features=classifier", "eval.num_samples=2000"],
        metrics=["classifier-FID", "largest class share", "G params", "D params", "D acc 32 px", "D acc 16 px",
                 "D acc 8 px"],
        steps=1000,
        env={**DATA, **ONE_THREAD},
    ),
    "translation": Suite(
        title="Unpaired translation on shapes_unpaired (outline <-> filled)",
        about=(
            "`dataset=shapes_unpaired`: A = outlines, B = the same shapes filled (32 px, 2048 per domain), drawn "
            "independently in training. Scored against each image's hidden true partner on the first 256 test "
            "pairs (unseen shapes; `gan-lab eval eval.metrics=[l1,psnr,ssim,cycle] eval.num_samples=256`): L1, PSNR "
            "(dB), SSIM of [0, 1] images, and the cycle L1 |G_BA(G_AB(a)) - a| (AtoB) and |G_AB(G_BA(b)) - b| "
            "(BtoA). Each model runs its own config (networks, optimizers, batch and `train.steps`: its shipped "
            "CPU budget), seed 0, one run per row, so no seed-to-seed spread is known. *input (no translation)*: "
            "the floor, each test input against its partner. *black image*: an all-black output against the "
            "partners, the score of translating to nothing (shapes cover little of the image, outlines less). "
            "*pix2pix (supervised)*: the upper bound, trained on "
            "`dataset=shapes_paired dataset.count=2048`, whose pairs are exactly shapes_unpaired's training pairs "
            "(same seed, size, count, scale, tilt; checked tensor for tensor; shapes_paired's default 8192 pairs "
            "would be other shapes); A to B only. `gan-lab eval` would score it on its own training pairs "
            "(shapes_paired has no test split), so this script scores it on the test pairs with the same "
            "functions. *train s*: one thread (`OMP_NUM_THREADS=1`) of a shared 2-core CPU (other jobs ran "
            "beside every row). Samples: the last grids, triplets (input, translation, translated back) of the "
            "first 16 training images per direction (pix2pix: input, output, target of its first training pairs)."),
        common=[],
        rows={
            "input (no translation)": Row(None, score=untranslated),
            "black image": Row(None, score=black),
            "cyclegan": ["model=cyclegan"],
            "discogan": ["model=discogan"],
            "dualgan": ["model=dualgan"],
            "pix2pix (supervised)": Row(
                ["model=pix2pix", "dataset=shapes_paired", "dataset.count=2048"], score=supervised,
                note="`gan-lab eval` of the same run on its first 256 training pairs: L1 {L1:.4g}, PSNR {PSNR:.4g}, "
                     "SSIM {SSIM:.4g}; the table's AtoB values are on the test pairs."),
        },
        eval=["eval.metrics=[l1,psnr,ssim,cycle]", f"eval.num_samples={TEST_PAIRS}"],
        metrics=[f"{d} {m}" for d in ("AtoB", "BtoA") for m in ("L1", "PSNR", "SSIM")]
        + ["AtoB cycle L1", "BtoA cycle L1"],
        steps=None,
        env=ONE_THREAD,
    ),
    "summer2winter": Suite(
        title="CycleGAN on summer2winter_yosemite",
        about=(
            "`dataset=unpaired_folder`: summer2winter_yosemite (Zhu et al. 2017; here 100 + 100 training and 30 + "
            "30 test images) at 72 px, random 64 px crops and flips in training, centre crops otherwise; "
            "`model=cyclegan` with its config (width 32, 6 residual blocks, 2-layer PatchGAN, batch 1), seed 0, "
            "one run. With no true partners the number is the cycle L1 ([0, 1] units) on the 30 test images per "
            "domain (`gan-lab eval eval.metrics=[cycle] eval.num_samples=30`). No FID: the Inception weights are not "
            "on this offline machine (and 30 images are too few). *train s*: one thread (`OMP_NUM_THREADS=1`) of "
            "a shared 2-core CPU (other jobs ran beside it). Samples: the last grids, triplets (input, translation, "
            "translated back) of the first 16 training images per direction, centre-cropped (AtoB: summer to "
            "winter)."),
        common=["model=cyclegan", "dataset=unpaired_folder"],
        rows={"cyclegan": []},
        eval=["eval.metrics=[cycle]", "eval.num_samples=30"],
        metrics=["AtoB cycle L1", "BtoA cycle L1"],
        steps=None,
        env={**DATA, **ONE_THREAD},
    ),
    "bigan": Suite(
        title="BiGAN and ALI on MNIST: the encoder",
        about=(
            "`experiment=bigan_mnist`: the BiGAN code's permutation-invariant MNIST set-up (jeffdonahue/bigan "
            "`train_mnist.sh`): 28 px digits, z ~ U[-1, 1]^50, MLPs (G 1024-1024 with batch norm, E 1024-1024, D "
            "x -> 1024 joined with z -> 1024 with batch norm -> 1), Adam 2e-4 (beta1 0.5, weight decay 2.5e-5), batch 128, the "
            "learning rate constant for half the run and then linearly to 0 (the code's 200 + 200 epochs, compressed "
            "into the short run). *BiGAN (Adam 1e-4)*: the same with ALI's learning rate. *ALI*: the same networks and game with ALI's stochastic encoder (E outputs mu and "
            "log sigma, z = mu + sigma eps), a N(0, I) prior, no batch norm in D's joint layer (ALI's CIFAR-10 D has "
            "none) and ALI's Adam (1e-4, betas (0.5, 0.999), no weight decay). A **short run**: 2000 steps (4.3 epochs; the paper's code runs 400), seed 0, one seed per row, "
            "one CPU thread (`OMP_NUM_THREADS=1`) on a shared 2-core machine (*train s* is indicative: other jobs ran beside "
            "the rows, most beside *BiGAN* and *ALI*). From `gan-lab eval "
            "eval.metrics=[reconstruction,probe]` on the 10,000 test digits: *probe accuracy*, a logistic "
            "regression (full-batch L-BFGS, 200 iterations, L2 1e-4, standardised features) fit on E(x) of all "
            "60,000 training digits, tested on the test digits; *probe accuracy random E*, the same on an encoder "
            "of the same architecture with random weights (seed 0); *reconstruction L2*, the mean per-image L2 norm "
            "of x - G(E(x)) on [0, 1] pixels (the BiGAN code's `EGr`, directly comparable), and *shuffled*, against "
            "the next test image instead (`EGr_b`): equal values mean no reconstruction; *L1*, the same as a mean "
            "absolute error per pixel; *latent L1*, mean |z - E(G(z))| per dimension for 10,000 prior draws, and "
            "against the next draw. E is evaluated on its mean (ALI's mu)."),
        common=["experiment=bigan_mnist"],
        rows={
            "BiGAN": Row([], note=(
                "failed in this short run: D's loss fell from 0.9 to 0.14 by step 1200 and 0.08 at the end; the "
                "samples are noise and G(E(x)) is no closer to x than to another digit")),
            "BiGAN (Adam 1e-4)": Row([*(f"optim.{p}.lr=1e-4" for p in "GED")], note=(
                "stable (D's loss about 0.5 at the end) but early: G(E(x)) is only a little closer to x than to "
                "another digit ({reconstruction L2:.2f} vs {reconstruction L2 shuffled:.2f}) and E(x) is a worse "
                "linear feature than a random encoder's")),
            "ALI": Row(["model.prior=normal", "model.encoder.stochastic=true", "model.discriminator.joint_norm=false",
                        *(f"optim.{p}.{k}" for p in "GED" for k in ("lr=1e-4", "weight_decay=0"))], note=(
                "reconstructions clearly closer to x than to another digit ({reconstruction L2:.2f} vs "
                "{reconstruction L2 shuffled:.2f}; the BiGAN code's log: 8.70 vs 9.55 after 1 epoch, 5.95 vs 9.60 "
                "after 400) and E(x) a better linear feature than a random encoder's ({probe accuracy:.3f} vs "
                "{probe accuracy random E:.3f})")),
            "BiGAN code, README log (400 epochs)": Row(None, score=bigan_readme),
        },
        eval=["eval.metrics=[reconstruction,probe]", "eval.available.reconstruction.count=10000",
              "eval.available.probe.train_count=null"],
        metrics=["probe accuracy", "probe accuracy random E", "reconstruction L2", "reconstruction L2 shuffled",
                 "reconstruction L1", "reconstruction L1 shuffled", "latent L1", "latent L1 shuffled"],
        steps=2000,
        env={**DATA, **ONE_THREAD},
    ),
    "sr": Suite(
        title="4x super-resolution: SRResNet and SRGAN against bicubic",
        about=(
            "LR/HR pairs made by `dataset=sr` (shapes, 32 px HR, 8192 training images) and `dataset=sr_cifar10` "
            "with the CIFAR-10 images this machine has (`dataset@dataset.base=cifar10_partial`: the first 932 of "
            "`data_batch_1` to train, of `test_batch` to test): each HR image downscaled 4x by antialiased bicubic "
            "to 8 px LR (Ledig et al. "
            "2017, §3.2). `model=srresnet`: the SRResNet generator (B = 8 residual blocks, 64 channels) on the MSE "
            "content loss, 500 steps of batch 16; `model=srgan`: SRGAN-MSE (content MSE + 1e-3 x non-saturating "
            "adversarial loss, the paper's discriminator), started from that SRResNet run's generator "
            "(`model.init`, the paper's initialisation) and trained 200 more steps; *SRResNet, 200 more steps*: the same "
            "200 steps without the adversary (also from that run; so SRGAN-MSE is compared at equal generator steps). "
            "Adam lr 1e-4, beta1 0.9 (fresh moments in the continued runs); seed 0, "
            "one run per row. Scores (`gan-lab eval eval.metrics=[psnr_y,ssim_y] eval.num_samples=1000`): PSNR (dB) "
            "and SSIM of the BT.601 luma Y with 4 border pixels left out, on 1000 test images (shapes drawn with seed 1, "
            "unseen in training; CIFAR-10: the 932 test images), beside bicubic upsampling of the same LR "
            "inputs (*bicubic* columns, from the same report). The paper rows are Table 2's Set14 4x numbers as "
            "recalled in the spec (not verified against the paper): natural 500 px photographs, networks with B = "
            "16 trained 10^6 (SRResNet) and 2 x 10^5 (SRGAN) steps on ImageNet, SRGAN with the VGG54 content loss; "
            "they show the paper's ordering (SRResNet > bicubic on PSNR; SRGAN near bicubic on PSNR but best on "
            "opinion scores), not numbers these short 32 px runs could reach. *train s*: one thread "
            "(`OMP_NUM_THREADS=1`) of a shared 2-core CPU; SRGAN rows count only their own steps. Samples: the last "
            "grids, rows of LR (square pixels) | bicubic | output | HR of the first 16 training images."),
        common=[],
        rows={
            "shapes: SRResNet": ["model=srresnet"],
            "shapes: SRResNet, 200 more steps": ["model=srresnet", "model.init=@shapes: SRResNet",
                                                 "train.steps=200"],
            "shapes: SRGAN-MSE": ["model=srgan", "model.pretrain_steps=0", "model.init=@shapes: SRResNet",
                                  "train.steps=200"],
            "cifar10: SRResNet": ["model=srresnet", "dataset=sr_cifar10", "dataset@dataset.base=cifar10_partial"],
            "cifar10: SRResNet, 200 more steps": ["model=srresnet", "dataset=sr_cifar10",
                                                  "dataset@dataset.base=cifar10_partial",
                                                  "model.init=@cifar10: SRResNet", "train.steps=200"],
            "cifar10: SRGAN-MSE": ["model=srgan", "dataset=sr_cifar10", "dataset@dataset.base=cifar10_partial",
                                   "model.pretrain_steps=0",
                                   "model.init=@cifar10: SRResNet", "train.steps=200"],
            **{f"paper, Set14: {name}": Row(None, score=paper(name, values)) for name, values in SET14_X4.items()},
        },
        eval=["eval.metrics=[psnr_y,ssim_y]", "eval.num_samples=1000"],
        metrics=["PSNR-Y", "SSIM-Y", "bicubic PSNR-Y", "bicubic SSIM-Y"],
        steps=None,
        env={**DATA, **ONE_THREAD},
    ),
    "text": Suite(
        title="Text to image on shapes_text: GAN-INT-CLS and StackGAN",
        about=(
            "`dataset=shapes_text` (coloured shapes with generated captions such as \"a small red circle on the "
            "left\"; caption embeddings from the lab's trained joint image-text encoder, the mean of 4 per image) "
            "and each model's config: GAN-INT-CLS (Reed et al. 2016: GAN-CLS + GAN-INT, 32 px), StackGAN (Zhang "
            "et al. 2017: Stage I at 16 px on the 64 px images downsampled, then Stage II at 64 px on that Stage "
            "I, frozen). Seed 0, one run per row, batch 32 (the papers: 64), a short CPU budget (*steps x "
            "batch*): these are short runs, not converged models. Scored on the first "
            f"{HELDOUT_CAPTIONS} held-out captions (held-out word orders, held-out images; `gan-lab eval "
            f"eval.num_samples={HELDOUT_CAPTIONS}`): *caption accuracy*: the share of samples in which the "
            "shapes_text attribute classifier (trained on real images of the row's side, cached) reads the "
            "caption's shape / colour / size / position, and their mean; *caption retrieval top-1*: the share "
            "of samples whose best caption among 100 under the joint embedding asks for their own caption's "
            "attributes. *real images* rows: the held-out real images of those captions at 32 and 64 px, the "
            "ceiling of each side; *most frequent value*: the floor, a constant guess of each attribute's most frequent "
            "held-out value (a row at that value on an attribute shows no sign of following the caption there). The Stage-I row is scored on its 16 px samples, which `gan-lab eval` "
            "enlarges bilinearly to 64 px (the side the networks read), the baseline Stage II should beat. The papers report Inception "
            "scores on CUB/Oxford-102/COCO (StackGAN Table 1, as recalled and not verified against the PDF: "
            "CUB 3.70 for StackGAN against 2.88 for GAN-INT-CLS), which need those datasets and the authors' "
            "fine-tuned Inception networks, neither available offline here: no number below is comparable to "
            "them. *train s*: one thread (`OMP_NUM_THREADS=1`) of a shared 2-core CPU (other jobs ran beside "
            "every row). Samples: the last grids, one caption of the training set per row and one noise per "
            "column (Stage II: each Stage-I row enlarged above its Stage-II row)."),
        common=[],  # the model configs' own batch (32)
        rows={
            "most frequent value (constant guess)": Row(None, score=most_frequent_guess),
            "real images (32 px)": Row(None, score=real_captioned(32)),
            "gan_int_cls (32 px)": ["model=gan_int_cls", "train.steps=600"],
            "gan_int_cls, cls_weight=0, no interp (plain conditional GAN)": [
                "model=gan_int_cls", "model.cls_weight=0", "model.interp=false", "train.steps=600"],
            "real images (64 px)": Row(None, score=real_captioned(64)),
            "stackgan Stage I (16 px, enlarged)": ["model=stackgan", "train.steps=600"],  # eval reads it enlarged
            "stackgan Stage II (64 px)": ["model=stackgan", "model.stage=2", "model.stage1=@stackgan Stage I (16 px, enlarged)",
                                          "train.steps=600"],
        },
        eval=["eval.metrics=[caption_accuracy,caption_retrieval]", f"eval.num_samples={HELDOUT_CAPTIONS}"],
        metrics=[f"caption accuracy {a}" for a in ("shape", "colour", "size", "position", "mean")]
        + ["caption retrieval top-1"],
        steps=None,
        env=ONE_THREAD,
    ),
    "project": Suite(
        title="iGAN projection, colour edit and interpolation on shapes (DCGAN)",
        about=(
            "`gan-lab project` (Zhu et al. 2016, §3.1-3.2) on `model=dcgan` trained on `dataset=shapes` (32 px, "
            "coloured shapes on black; the config's networks, width 32, z_dim 100; batch 32, seed 0): a short run. "
            f"Projection: {PROJECTED} held-out real shapes (drawn with seed 1, unseen in training) and {PROJECTED} "
            "samples of the generator itself (saved as PNG: 8-bit rounding is their floor), one `gan-lab project "
            f"{' '.join(PROJECT)}` batch (pixel L2, no feature term, Adam lr 0.05 on z, the best start kept). "
            "*RMSE*, *PSNR* (dB): of [0, 1] images, each projection against its input, the mean over the images. "
            "G's own samples lie on its manifold, so their error is the search's shortfall in this budget (local "
            "minima included); the real shapes' larger error adds the manifold gap, what the generator cannot draw. "
            "*edit masked RMSE*: the colour brush on the first real image, its shape's pixels (mask: brighter than "
            "0.25) painted the complement of their mean colour (`mask=... color=[...]`, lambda_s 5, 200 Adam steps "
            "from the projection): the RMSE inside the mask against the brush colour, before -> after. The paper "
            "shows its projections on 64 px shoes, handbags, outdoor scenes and churches with AlexNet conv4 "
            "features (as recalled, not verified; no numbers recalled); nothing below is comparable to it. One "
            "seed, one run. *train s*: one thread (`OMP_NUM_THREADS=1`) of a shared 2-core CPU (other jobs ran "
            "beside it). Pictures: the run's last sample grid; inputs above their projections; input, projection, "
            "the constraint drawn over it, edit; input a, 8 interpolation steps, input b."),
        common=["model=dcgan"],
        rows={"dcgan": Row([], score=projection_gap, note=(
            "projections: `gan-lab project ckpt=<run> image=[real0.png,...,own7.png] starts=4 steps=500`; edit: "
            "`gan-lab project ckpt=<run> image=real0.png mask=mask.png color=[...] starts=4 steps=500`; "
            "interpolation: `gan-lab project ckpt=<run> image=[real0.png,real1.png] interpolate=8 starts=4 steps=500`"))},
        eval=None,
        metrics=["real RMSE", "real PSNR", "own RMSE", "own PSNR", "edit masked RMSE"],
        steps=2500,
        env=ONE_THREAD,
    ),
    "anogan": Suite(
        title="MNIST one-class anomaly detection: AnoGAN search vs f-AnoGAN encoder",
        about=(
            "The one-class protocol of Ruff et al. 2018 (Deep SVDD): per digit c, a DCGAN (`model=dcgan`, width "
            "32, z ~ N(0, I) 100-d, 32 px, Adam 2e-4) trained on the training images of c only "
            "(`dataset.classes=[c]`, about 6,000 images) for a short run of 300 steps of batch 64 (about 3 epochs), "
            "seed 0; then MNIST's test split scored by `gan-lab anomaly`, c normal and the other nine digits "
            "anomalous, AUROC of the anomaly score. *AUROC search*: AnoGAN (Schlegl et al. 2017, §2.2-2.3), "
            f"`{' '.join(ANOMALY_SEARCH)}`: a stratified subset of 200 of the 10,000 test images (each digit in its "
            "share, about 20 per digit) and Γ = 100 Adam steps on z (lr 0.01, z from N(0, I), seed 0) instead of the "
            "paper's 500, λ = 0.1: the full protocol (10,000 images x 500 steps) would take over an hour per digit "
            "here. "
            f"*AUROC encoder*: f-AnoGAN's izi_f encoder (Schlegl et al. 2019), `{' '.join(ANOMALY_ENCODER)}` "
            "(RMSProp 5e-5, κ = 1, batch 64; the reference code trains 50,000 iterations) on the digit's training "
            "images, scored on all 10,000 test images. *s/image*: scoring seconds per test image (encoder: without "
            "its training, *encoder train s*), one thread (`OMP_NUM_THREADS=1`) of a shared 2-core CPU with other "
            "jobs running: indicative only. *AUROC AnoGAN, Ruff et al.*: the AnoGAN row of Ruff et al. 2018, Table 1 "
            "(as recalled in the spec, not verified against the paper), a mean over 10 seeds on the whole test set "
            "with their preprocessing (global contrast normalisation, min-max scaling) and their AnoGAN training "
            "budget: ours is one seed, a short run, 200 images for the search, so differences of a few points are "
            "within noise (with 20 normal images the search's AUROC moves by several points between subsets). "
            "Samples: the last training grid of each digit's GAN, then the search's grid: the first 8 normal and 8 "
            "anomalous images of the scored subset (top), G(z*) (middle), the residual |x - G(z*)| (bottom)."),
        common=["model=dcgan", "dataset=mnist", "train.batch_size=64"],
        rows={str(d): Row([f"dataset.classes=[{d}]"],
                          score=anomaly_scores(d, ANOMALY_SEARCH, ANOMALY_ENCODER, {**DATA, **ONE_THREAD}))
              for d in range(10)},
        eval=None,
        metrics=["AUROC search", "AUROC encoder", "AUROC AnoGAN, Ruff et al. (%)", "s/image search",
                 "s/image encoder", "encoder train s"],
        steps=300,
        env={**DATA, **ONE_THREAD},
    ),
    "musegan": Suite(
        title="MuseGAN on the Bach chorales",
        about=(
            "`model=musegan` (Dong et al. 2018) on `dataset=bach_chorales`: music21's 313 four-voice 4/4 chorales, "
            "937 non-overlapping 4-bar phrases, 16 steps per bar, 48 pitches (MIDI 36-83), tracks soprano, alto, "
            "tenor, bass; the config's CPU-sized networks (width 16), WGAN-GP (lambda 10, 5 critic steps), Adam "
            "(0.5, 0.9) at lr 1e-3 (the authors' later code, `src/musegan`, now the config's default; the paper's code's 2e-4 "
            "left every sample empty after 300 steps: G's tanh output was still creeping down from 0 towards the "
            "data's mostly -1; at 1e-3 too at 300 steps (output mean -0.96, max -0.24), and notes appeared by step "
            "600, so the row is that run continued to 700 steps with `resume=`, which equals an uninterrupted run "
            "bit for bit), batch 32, seed 0, one run per row: a short run (*steps x batch*), not a trained "
            "model (the paper: 20 epochs of 50,266 phrases on a GPU). Metrics (`gan-lab eval eval.metrics=[eb,upc,qn,td] "
            "eval.num_samples=2000`, samples binarised at 0; per track S/A/T/B): *EB* empty bars %, *UPC* pitch "
            "classes used per non-empty bar, *QN* notes of at least 2 steps % (the one-step rest makes a 1-step "
            "note a fragment), *TD* tonal distance (Harte et al. 2006) per voice pair, lower = closer harmony; the "
            "*shuffled* row re-pairs the voices across phrases at random: a generator whose TD falls below it "
            "relates its voices. No DP: the chorales have no drums. The *paper* rows are Dong et al. 2018's Tables "
            "1-2: LPD-5 rock phrases with five tracks (bass, drums, guitar, piano, strings) at 24 steps per beat, "
            "per-track cells in the order B/D/G/P/S (EB) or B/G/P/S, TD pairs B-G/B-S/B-P/G-S/G-P/S-P, QN at >= 3 "
            "steps, and UPC and TD computed with the paper's code's chroma, which sums groups of consecutive "
            "semitones instead of pitch classes: other data and a different measure, shown for the pattern "
            "(data vs models), not for comparison. *train s*: one thread (`OMP_NUM_THREADS=1`) of a shared "
            "2-core CPU. Samples: the last grid (16 samples, time to the right, one colour per voice: soprano "
            "red, alto green, tenor blue, bass orange; grey bar lines); a MIDI file of the hybrid run is "
            "`docs/results/musegan/hybrid_000.mid` (`gan-lab sample ckpt=<run> format=midi n=1`)."),
        common=["model=musegan"],
        rows={
            "Bach chorales (data)": Row(None, score=bach_data(shuffled=False)),
            "Bach chorales, voices shuffled": Row(None, score=bach_data(shuffled=True)),
            "hybrid, Adam 1e-3": Row(
                ["train.steps=700", "optim.G.lr=1e-3", "optim.D.lr=1e-3"], score=music_generated,
                note=("no empty bars and each voice in its register (grid), but 1-2 more pitch classes per bar than "
                      "the chorales, a sixth to a half of their qualified notes (fragments: the binarised tanh "
                      "output the paper reports too) and a TD below both the real and the shuffled rows in every "
                      "pair: dense simultaneous notes in every voice rather than learnt harmony (the paper's hybrid "
                      "also sits below its data's TD). A short run; no jamming or composer row in this budget "
                      "(`model.generator.mode=jamming model.discriminator.critics=4`, `mode=composer`).")),
            **{f"paper (LPD rock): {name}": Row(None, score=musegan_paper(name)) for name in MUSEGAN_PAPER},
        },
        eval=["eval.metrics=[eb,upc,qn,td]", "eval.num_samples=2000"],
        metrics=["EB % S/A/T/B", "UPC S/A/T/B", "QN % S/A/T/B", "TD SA/ST/SB/AT/AB/TB"],
        steps=None,
        env=ONE_THREAD,
    ),
    "energy": Suite(
        title="Energy-based GANs on MNIST: DCGAN, EBGAN, BEGAN",
        about=(
            "`dataset=mnist` (28 px digits resized to 32 px), the same budget for every row (1000 steps of batch 16, "
            "BEGAN's batch size), seed 0, each model's own networks and optimizers: *dcgan* (width 32, "
            "Adam 2e-4, beta1 0.5, non-saturating loss), *ebgan* (`model=ebgan`: the DCGAN generator against an "
            "auto-encoder D whose energy is the per-pixel mean squared reconstruction error, margin 1 on that scale, "
            "pull-away term 0.1; Adam 2e-4), *began* (`model=began`: 3x3 ELU networks with n = 32, N_z = N_h = 64, "
            "the L1 reconstruction loss as energy, gamma 0.5, lambda_k 0.001, k_0 = 0; Adam 8e-5 with betas "
            "(0.9, 0.999) as the reference port). A short run: none of these models has converged, and one seed "
            "gives no seed-to-seed spread. *classifier-FID*: FID on the features of gan-lab's MNIST classifier "
            "(`gan-lab train-classifier dataset=mnist`) between 2000 samples and the test split, as in the MNIST "
            "table; not comparable to published (Inception) FID. *classifier-IS*: the Inception score's formula on that "
            "classifier's 10 class probabilities (at most 10), likewise not an Inception score. *largest class share*: the most frequent digit "
            "among those samples (by the classifier) and its share, 0.1 for balanced digits (mode collapse). "
            "*k (end)* and *M_global*: BEGAN's equilibrium weight after the last step and its convergence measure "
            "M_global = L(x) + |gamma L(x) - L(G(z))| (§3.4.1), the mean of the first and of the last 50 logged "
            "steps; the curve of both over training is beside its samples. The paper's only number is of another "
            "kind: the Inception score of BEGAN on CIFAR-10, 5.62 (Berthelot et al. 2017, Table 1, as recalled in "
            "the spec, not verified against the paper; unsupervised, other data, networks and budget; real data "
            "11.24), shown as its own row. *train s*: one thread (`OMP_NUM_THREADS=1`) of a shared 2-core CPU "
            "(other jobs ran beside every row). Reading: at this budget BEGAN is still in its transient and both "
            "paper-constant runs collapse to one image. With gamma 0.5, k rose to about 0.012 by step 200, then the "
            "auto-encoder learned digits, L(G(z)) jumped from about 0.06 to 0.5 and k fell to 0 (by step 280) and stayed "
            "there, since L(G(z)) never came back below gamma L(x): D trained as a plain auto-encoder of real digits "
            "and G settled on one blob it reconstructs well. With gamma 0.75 (PyTorch-GAN's and TorchGAN's default) "
            "the same drop happened, then G settled on an all-black image (L(G(z)) about 0.03, below 0.75 L(x)), so k "
            "rose again, to 0.027 at the end, and was starting to push back. The gain lambda_k = 0.001 moves k by "
            "about 1e-4 per step at these loss scales, slowly for 1000 steps (the reference port trains 500,000); "
            "M_global fell in both runs while the samples collapsed, so within the transient it is no reading of "
            "quality. *began, lambda_k 0.01*: the same run with a tenfold gain (not a paper setting), to see the "
            "controller act within the budget: k rose faster (to about 0.047 by step 50) but fell to 0 by step 100 in "
            "the same jump of L(G(z)) and stayed there, with the same collapse, so the slow gain alone does not "
            "explain it. Whether these runs leave the collapse later, as the paper's runs of 10^5 steps would, is "
            "not known from this budget."),
        common=["dataset=mnist", "train.batch_size=16"],
        rows={
            "dcgan": Row(["model=dcgan"], score=sizes_and_levels),
            "ebgan": Row(["model=ebgan"], score=sizes_and_levels),
            "began": Row(["model=began", "train.log_every=10"],
                         score=lambda run_dir: {**sizes_and_levels(run_dir), **equilibrium(run_dir)}),
            "began, gamma 0.75": Row(["model=began", "model.gamma=0.75", "train.log_every=10"],
                                     score=lambda run_dir: {**sizes_and_levels(run_dir), **equilibrium(run_dir)}),
            "began, lambda_k 0.01": Row(["model=began", "model.lambda_k=0.01", "train.log_every=10"],
                                        score=lambda run_dir: {**sizes_and_levels(run_dir), **equilibrium(run_dir)}),
            "paper: BEGAN on CIFAR-10 (Inception score)": Row(None, score=published(
                "BEGAN's unsupervised Inception score on CIFAR-10 in Berthelot et al. 2017, Table 1 (as recalled in "
                "the spec, not verified; other data, metric, networks and budget)", {"paper IS": 5.62})),
        },
        eval=["eval.features=classifier", "eval.num_samples=2000"],
        metrics=["classifier-FID", "classifier-IS", "largest class share", "G params", "D params", "k (end)", "M_global",
                 "paper IS"],
        steps=1000,
        env={**DATA, **ONE_THREAD},
    ),
}


def gan_lab(args: list[str], env: dict[str, str]) -> None:
    cmd = [shutil.which("gan-lab") or "gan-lab", *args]
    done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def run_row(suite: Suite, row: Row, run_dir: Path, steps: int | None, dirs: dict[str, Path]) -> dict:
    """Train (unless ``run_dir`` already holds the finished run), evaluate; returns the eval report's values
    and the row's own scores (a row that trains nothing has only those). ``dirs``: the run directory of each
    row, for overrides ``key=@<row>``."""
    if row.train is None:
        return {"command": f"no training; {row.score.__doc__}", **row.score(None)}
    budget = [f"train.steps={steps}"] if steps else []  # none: the model config's own
    own = [f"{o.split('=@', 1)[0]}={dirs[o.split('=@', 1)[1]]}" if "=@" in o else o for o in row.train]
    train = [*suite.common, *own, *budget, "seed=0", "train.progress=plain", "train.sample_every=${train.steps}",
             "train.ckpt_every=${train.steps}", f"hydra.run.dir={run_dir}"]
    if not (run_dir / "checkpoints" / "last.pt").exists():
        gan_lab(["train", *train], suite.env)
    state = checkpoint.load(run_dir / "checkpoints" / "last.pt")
    report = {"metrics": {}}
    if suite.eval is not None:
        gan_lab(["eval", f"ckpt={run_dir}", *suite.eval], suite.env)
        report = json.loads(max((run_dir / "eval").glob("*.json")).read_text())
    shown = [o.replace("=@", "=<run of ") + ">" if "=@" in o else o for o in row.train]
    values = {"command": f"`{shlex.join(['gan-lab', 'train', *suite.common, *shown, *budget])}`",
              "train s": f"{state['elapsed']:.0f}",  # training time, all sessions
              "steps × batch": f"{state['step']} × {state['config']['train']['batch_size']}",
              **report["metrics"], **(row.score(run_dir) if row.score else {})}
    return {**values, "note": row.note.format_map(values)}


def fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))


def columns(suite: Suite) -> list[str]:
    return [*suite.metrics, *(["steps × batch"] if suite.steps is None else []), "train s"]


def markdown(suite: Suite, name: str, results: dict[str, dict], steps: int | None, images: Path) -> str:
    budget = (f"Generator steps per row: {steps}." if steps else
              "Steps per row: each model config's own `train.steps`, with its batch size in *steps × batch*.")
    lines = [f"<!-- zoo:{name}:start -->", f"## {suite.title}", "", suite.about, "",
             f"{budget} Produced by `python scripts/zoo.py {name}`; do not edit by hand.",
             "", "| row | " + " | ".join(columns(suite)) + " | samples |", "|---|" + "---|" * (len(columns(suite)) + 1)]
    for row, res in results.items():
        pictures = " ".join(f"![{alt}]({images.name}/{name}/{grid})" for alt, grid in res.get("grids", []))
        lines.append(f"| {row} | " + " | ".join(fmt(res.get(c)) for c in columns(suite)) + f" | {pictures} |")
    notes = [f"- {row}: {res['note']}" for row, res in results.items() if res.get("note")]
    lines += ["", *notes, *([""] if notes else []), "Commands:", ""]
    return "\n".join(lines + [f"- {row}: {res['command']}" for row, res in results.items()]
                     + [f"<!-- zoo:{name}:end -->"])


def copy_grids(run_dir: Path, dest: Path, row: str) -> list[tuple[str, str]]:
    """The run's last sample grids into ``dest`` as ``<row>.png``, or ``<row>_<visual>.png`` per visual of the task;
    returns (alt text, file name) pairs."""
    steps: dict[int, list[tuple[str, Path]]] = {}
    for png in run_dir.glob("samples/*.png"):  # <visual>_<step>.png
        visual, step = png.stem.rsplit("_", 1)
        steps.setdefault(int(step), []).append((visual, png))
    last = sorted(steps[max(steps)])
    grids = [(row, f"{slug(row)}.png")] if len(last) == 1 else [(f"{row} {v}", f"{slug(row)}_{v}.png") for v, _ in last]
    for (_, png), (_, name) in zip(last, grids):
        shutil.copy(png, dest / name)
    return grids


def slug(row: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in row).strip("_")


def write_section(doc: Path, name: str, section: str) -> None:
    text = doc.read_text() if doc.exists() else "# Results\n\nTables produced by `scripts/zoo.py`.\n"
    start, end = f"<!-- zoo:{name}:start -->", f"<!-- zoo:{name}:end -->"
    if start in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--steps", type=int, help="generator steps per run (default: the suite's)")
    parser.add_argument("--only", help="comma-separated row names")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "zoo", help="run directories")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "results.md")
    args = parser.parse_args()
    suite = SUITES[args.suite]
    steps = args.steps or suite.steps
    rows = {k: v for k, v in suite.rows.items() if not args.only or k in args.only.split(",")}
    images = args.doc.parent / "results"
    (images / args.suite).mkdir(parents=True, exist_ok=True)
    console = Console()
    table = Table(title=f"{suite.title}: {f'{steps} steps' if steps else 'own steps'}, seed 0")
    for column in ("row", *columns(suite)):
        table.add_column(column)
    results = {}
    dirs = {row: args.out / args.suite / f"{slug(row)}-{steps or 'default'}" for row in suite.rows}
    for row, spec in rows.items():
        spec = spec if isinstance(spec, Row) else Row(spec)
        run_dir = dirs[row]
        overrides = "(no training)" if spec.train is None else " ".join(spec.train)
        console.print(f"[bold]{escape(row)}[/]: {escape(overrides)}")
        try:
            results[row] = run_row(suite, spec, run_dir, steps, dirs)
        except RuntimeError as err:
            console.print(f"[red]{escape(row)} failed[/]: {escape(str(err))}")
            sys.exit(1)
        if spec.train is not None:
            results[row]["grids"] = copy_grids(run_dir, images / args.suite, row)
        for alt, picture in results[row].pop("pictures", []):  # named by the alt text's label, before its colon
            results[row]["grids"].append((f"{row}: {alt}", f"{slug(row)}_{slug(alt.split(':')[0])}.png"))
            shutil.copy(picture, images / args.suite / results[row]["grids"][-1][1])
        table.add_row(row, *(fmt(results[row].get(c)) for c in columns(suite)))
    console.print(table)
    write_section(args.doc, args.suite, markdown(suite, args.suite, results, steps, images))
    console.print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
