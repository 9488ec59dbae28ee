"""The bad-input corpus of ``scripts/torture.py`` (and of ``tests/test_torture.py``, which runs a part of it).

Each :class:`Case` is one command line of the real CLI (``gan-lab ...`` in a subprocess) with a bad input.
:func:`run_case` runs it in a sandbox folder and checks what a user must get: exit status 1 or 2, no
"Traceback" in the output, the output naming the key or file (``case.names``), and every file that existed
before (a run's checkpoints, its config.yaml, a cache entry) byte-identical after. Cases where gan-lab must
recover rather than refuse (a corrupt cache entry: rebuilt, never trusted) expect status 0 and check the file
that was rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

GAN_LAB = [sys.executable, "-m", "gan_lab"]
# A tiny run (a few seconds on one CPU thread); {sandbox} is the case's own folder.
TINY = ["model=dcgan", "train.steps=2", "train.batch_size=8", "train.log_every=1",
        "train.sample_every=2", "train.ckpt_every=2", "train.grid_size=8", "train.progress=plain", "hardware=cpu"]
RUN_DIR = "hydra.run.dir={sandbox}/run"
# Classifier features for in-training evaluation: offline, and the classifier is cached (GAN_LAB_CACHE); the
# same settings as the good run's (torture.KILL_RUN), so the cached classifier is the one used.
CLASSIFIER_EVAL = ["eval.every=2", "eval.features=classifier", "eval.classifier.steps=10", "eval.num_samples=32"]


@dataclass
class Case:
    name: str
    what: str  # the bad input, as the table shows it
    args: list[str]  # after `gan-lab`; "{sandbox}" and "{good}" (a finished tiny run) are filled in
    names: str  # a string the output must contain: the key, the option or the file
    prepare: Callable[[Path, Path], None] | None = None  # (sandbox, good run) -> None: the bad files
    status: tuple[int, ...] = (1, 2)
    check: Callable[[Path, str], str | None] | None = None  # (sandbox, output) -> failure or None
    tags: set[str] = field(default_factory=set)  # "ci": in the test's subset


@dataclass
class Outcome:
    case: Case
    status: int
    line: str  # the error line the user sees (the last ERROR line, else the last line)
    failures: list[str]


# -- files the cases prepare --

def png(path: Path, size=(16, 16), colour=(200, 30, 30)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def image_folder(sandbox: Path, bad: str | None = None) -> None:
    """sandbox/images: 12 good PNGs and, with ``bad``, one bad file ``bad.png``."""
    for i in range(12):
        png(sandbox / "images" / f"{i:02d}.png", colour=(20 * i, 100, 50))
    if bad == "truncated":
        data = io.BytesIO()
        from PIL import Image

        Image.new("RGB", (64, 64), (1, 2, 3)).save(data, format="PNG")
        (sandbox / "images" / "bad.png").write_bytes(data.getvalue()[:60])
    elif bad == "text":
        (sandbox / "images" / "bad.png").write_text("this is not an image\n")
    elif bad == "empty":
        (sandbox / "images" / "bad.png").write_bytes(b"")


def paired_folder(sandbox: Path, width: int, height: int = 32) -> None:
    for i in range(4):
        png(sandbox / "pairs" / "train" / f"{i}.png", size=(width, height))


def _ckpt(good: Path) -> Path:
    return good / "checkpoints" / "last.pt"


def edit_checkpoint(change: Callable[[dict], object]) -> Callable[[Path, Path], None]:
    """A copy of the good run in sandbox/run whose last.pt is ``change(state)`` (or state changed in place)."""
    def prepare(sandbox: Path, good: Path) -> None:
        shutil.copytree(good, sandbox / "run")
        path = _ckpt(sandbox / "run")
        state = torch.load(path, weights_only=True)
        new = change(state)
        path.unlink()  # last.pt is a hard link of the numbered file: write a file of its own
        torch.save(state if new is None else new, path)
    return prepare


def copy_run(sandbox: Path, good: Path) -> None:
    shutil.copytree(good, sandbox / "run")


def truncate_checkpoint(sandbox: Path, good: Path) -> None:
    copy_run(sandbox, good)
    path = _ckpt(sandbox / "run")
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])


def other_model(state: dict) -> None:
    """The config says model=gan (an MLP), the weights are DCGAN's."""
    state["config"]["model"]["_target_"] = "gan_lab.models.gan.NoiseToImage"
    state["config"]["model"]["generator"]["_target_"] = "gan_lab.models.gan.Generator"


class Pickled:
    """An arbitrary object: what a pickle can run code through."""


def flip_cache_bytes(sandbox: Path, good: Path) -> None:
    """The cached eval classifier with a few bytes of its weights flipped (still a valid archive)."""
    for path in (sandbox / "cache").rglob("*.pt"):
        with zipfile.ZipFile(path) as z:
            info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size > 64)
        data = bytearray(path.read_bytes())
        local = info.header_offset  # the local header's name and extra lengths (torch pads with its extra field)
        start = local + 30 + int.from_bytes(data[local + 26:local + 28], "little") \
            + int.from_bytes(data[local + 28:local + 30], "little") + 16
        for i in range(start, start + 8):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))


def truncate_cache(sandbox: Path, good: Path) -> None:
    for path in (sandbox / "cache").rglob("*.pt"):
        path.write_bytes(path.read_bytes()[:100])


def cache_rebuilt(sandbox: Path, output: str) -> str | None:
    """The corrupt cache entry was named, ignored and written again (loadable, intact)."""
    files = list((sandbox / "cache").rglob("*.pt"))
    if "ignoring" not in output:
        return "the corrupt cache entry was not reported (trusted?)"
    if not files or any(hashlib.sha256(f.read_bytes()).hexdigest() == _corrupt_digest.get(f) for f in files):
        return "the corrupt cache entry was not rebuilt"
    return None


_corrupt_digest: dict[Path, str] = {}


def with_cache(corrupt: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    """sandbox/cache: the good run's warm cache, then corrupted; remembers the corrupt files' digests."""
    def prepare(sandbox: Path, good: Path) -> None:
        shutil.copytree(good.parent / "cache", sandbox / "cache")
        corrupt(sandbox, good)
        for f in (sandbox / "cache").rglob("*.pt"):
            _corrupt_digest[f] = hashlib.sha256(f.read_bytes()).hexdigest()
    return prepare


def _train(*args: str) -> list[str]:
    """``gan-lab train`` of the tiny run with ``args``; on 64 shapes unless ``args`` choose a dataset."""
    shapes = [] if any(a.startswith("dataset=") for a in args) else ["dataset.count=64"]
    return ["train", *TINY, *shapes, RUN_DIR, *args]


def _resume(*args: str) -> list[str]:
    return ["train", "resume={sandbox}/run", *args]


CASES = [
    # -- unknown keys and groups (Hydra's own errors: one line naming the key, exit 1) --
    Case("unknown-group-option", "model=nope", _train("model=nope"), "model/nope"),
    Case("unknown-key", "train.stepz=3", _train("train.stepz=3"), "stepz"),
    Case("unknown-dataset", "dataset=nope", _train("dataset=nope"), "dataset/nope"),
    Case("unknown-trick", "tricks=[nope]", _train("tricks=[nope]"), "tricks/nope"),
    Case("unknown-loss", "loss=nope", _train("loss=nope"), "loss/nope"),
    Case("unknown-hardware", "hardware=tpu", _train("hardware=tpu"), "hardware/tpu"),
    Case("unknown-command", "gan-lab trian", ["trian"], "trian"),
    Case("bad-override-syntax", "train.steps=[1", _train("train.steps=[1"), "'[1'"),
    # -- wrong types and ranges --
    Case("negative-steps", "train.steps=-1", _train("train.steps=-1"), "train.steps"),
    Case("zero-steps", "train.steps=0", _train("train.steps=0"), "train.steps"),
    Case("batch-not-int", "train.batch_size=abc", _train("train.batch_size=abc"), "batch_size", tags={"ci"}),
    Case("precision-fp8", "hardware.precision=fp8", _train("hardware.precision=fp8"), "precision"),
    Case("lr-zero", "optim.G.lr=0", _train("optim.G.lr=0"), "optim.G.lr"),
    Case("lr-negative", "optim.D.lr=-1e-3", _train("optim.D.lr=-1e-3"), "optim.D.lr"),
    Case("keep-negative", "train.keep_ckpts=-1", _train("train.keep_ckpts=-1"), "train.keep_ckpts"),
    Case("ckpt-every-zero", "train.ckpt_every=0", _train("train.ckpt_every=0"), "train.ckpt_every"),
    Case("log-every-float", "train.log_every=1.5", _train("train.log_every=1.5"), "log_every"),
    Case("device-unknown", "hardware.device=gpu7", _train("hardware.device=gpu7"), "hardware.device"),
    Case("batch-over-dataset", "train.batch_size=1000 (64 images)", _train("train.batch_size=1000"),
         "train.batch_size"),
    Case("image-size-zero", "dataset.image_size=0", _train("dataset.image_size=0"), "image_size"),
    Case("seed-not-int", "seed=abc", _train("seed=abc"), "seed"),
    Case("clip-negative", "train.clip_grad.D=-1", _train("train.clip_grad.D=-1"), "train.clip_grad.D"),
    Case("eval-every-zero", "eval.every=0", _train("eval.every=0"), "eval.every"),
    Case("eval-features", "eval.features=nope", _train("eval.every=2", "eval.features=nope"), "eval.features"),
    Case("progress-mode", "train.progress=fancy", _train("train.progress=fancy"), "progress"),
    # -- incompatible model / dataset / trick / hardware --
    Case("pix2pix-on-shapes", "model=pix2pix dataset=shapes", _train("model=pix2pix", "dataset=shapes"),
         "dataset=shapes"),
    Case("dcgan-on-toy2d", "model=dcgan dataset=toy2d", _train("dataset=toy2d"), "toy2d"),
    Case("srresnet-ttur", "model=srresnet tricks=[ttur]", _train("model=srresnet", "tricks=[ttur]"), "optim.D"),
    Case("fp16-on-cpu", "hardware=fp16 on a CPU", _train("hardware=fp16", "hardware.device=cpu"), "fp16"),
    # -- image folders --
    Case("folder-missing", "dataset.path=<missing folder>",
         _train("dataset=image_folder", "dataset.path={sandbox}/nowhere", "dataset.image_size=16"),
         "nowhere"),
    Case("folder-empty", "dataset.path=<empty folder>",
         _train("dataset=image_folder", "dataset.path={sandbox}/images", "dataset.image_size=16"), "images",
         prepare=lambda s, g: (s / "images").mkdir()),
    Case("folder-truncated-png", "a truncated PNG in the folder",
         _train("dataset=image_folder", "dataset.path={sandbox}/images", "dataset.image_size=16"), "bad.png",
         prepare=lambda s, g: image_folder(s, "truncated"), tags={"ci"}),
    Case("folder-text-as-png", "a text file named .png in the folder",
         _train("dataset=image_folder", "dataset.path={sandbox}/images", "dataset.image_size=16"), "bad.png",
         prepare=lambda s, g: image_folder(s, "text")),
    Case("folder-empty-file", "an empty .png file in the folder",
         _train("dataset=image_folder", "dataset.path={sandbox}/images", "dataset.image_size=16"), "bad.png",
         prepare=lambda s, g: image_folder(s, "empty")),
    Case("paired-square", "paired_folder images 32x32 (not A|B, 2:1)",
         _train("model=pix2pix", "dataset=paired_folder", "dataset.path={sandbox}/pairs", "dataset.image_size=16",
                "dataset.load_size=16"), "0.png", prepare=lambda s, g: paired_folder(s, 32)),
    Case("paired-one-pixel", "paired_folder images 1 pixel wide",
         _train("model=pix2pix", "dataset=paired_folder", "dataset.path={sandbox}/pairs", "dataset.image_size=16",
                "dataset.load_size=16"), "0.png", prepare=lambda s, g: paired_folder(s, 1)),
    # -- checkpoints --
    Case("resume-other-model", "resume=<run> model=gan", _resume("model=gan"), "model=gan", prepare=copy_run),
    Case("resume-other-batch", "resume=<run> train.batch_size=4", _resume("train.batch_size=4"),
         "train.batch_size", prepare=copy_run),
    Case("resume-nothing", "resume=<empty folder>", ["train", "resume={sandbox}"], "no checkpoint"),
    Case("resume-missing", "resume=<missing path>", ["train", "resume={sandbox}/nowhere",
                                                     "hydra.run.dir={sandbox}/run"], "nowhere"),
    Case("ckpt-truncated", "resume=<truncated last.pt>", _resume(), "last.pt", prepare=truncate_checkpoint,
         tags={"ci"}),
    Case("ckpt-newer-format", "a checkpoint of format 99", _resume(), "format 99",
         prepare=edit_checkpoint(lambda s: {**s, "format_version": 99})),
    Case("ckpt-pickled-object", "a checkpoint holding a pickled object", _resume(), "last.pt",
         prepare=edit_checkpoint(lambda s: {**s, "extra": Pickled()})),
    Case("ckpt-not-gan-lab", "a torch file that is no gan-lab checkpoint", _resume(), "not a gan-lab checkpoint",
         prepare=edit_checkpoint(lambda s: {"weights": torch.zeros(3)})),
    Case("ckpt-other-model", "eval ckpt=<DCGAN weights, config says gan>",
         ["eval", "ckpt={sandbox}/run", "eval.features=classifier", "eval.num_samples=16"], "last.pt",
         prepare=edit_checkpoint(other_model)),
    Case("eval-missing-ckpt", "gan-lab eval ckpt=<missing file>", ["eval", "ckpt={sandbox}/none.pt"], "none.pt"),
    Case("eval-truncated", "gan-lab eval ckpt=<truncated>", ["eval", "ckpt={sandbox}/run"], "last.pt",
         prepare=truncate_checkpoint),
    Case("sample-pickled", "gan-lab sample ckpt=<pickled object>", ["sample", "ckpt={sandbox}/run"], "last.pt",
         prepare=edit_checkpoint(lambda s: {**s, "extra": Pickled()})),
    Case("sample-text-file", "gan-lab sample ckpt=<a text file>", ["sample", "ckpt={sandbox}/notes.pt"],
         "notes.pt", prepare=lambda s, g: (s / "notes.pt").write_text("hello\n")),
    # -- corrupt caches: rebuilt, never trusted --
    Case("cache-truncated", "a truncated cached classifier", _train(*CLASSIFIER_EVAL), "cache", status=(0,),
         prepare=with_cache(truncate_cache), check=cache_rebuilt),
    Case("cache-flipped-bytes", "a cached classifier with flipped weight bytes", _train(*CLASSIFIER_EVAL), "cache",
         status=(0,), prepare=with_cache(flip_cache_bytes), check=cache_rebuilt, tags={"ci"}),
    # -- NaN losses --
    Case("nan-loss", "optim.G.lr=1e30 optim.D.lr=1e30", _train("optim.G.lr=1e30", "optim.D.lr=1e30",
                                                                "train.steps=6"), "loss/"),
]


def environment(root: Path) -> dict:
    return {**os.environ, "GAN_LAB_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1", "COLUMNS": "400"}


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(output: str) -> str:
    """The line a user reads: gan-lab's logged ERROR (else WARNING) line, else a traceback's last line, else
    the first line (Hydra's own errors print their message first, then the options or the search path)."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and "HYDRA_FULL_ERROR" not in line]
    for level in (" ERROR ", " WARNING "):
        logged = [line for line in lines if level in f" {line} "]
        if logged:
            return logged[-1]
    return (lines[-1] if "Traceback" in output else lines[0]) if lines else ""


def run_case(case: Case, root: Path) -> Outcome:
    """Run ``case`` in ``root/<name>``; ``root/good`` is a finished run with in-training classifier-FID and
    ``root/cache`` its warm cache (``torture.corpus_root``)."""
    env = environment(root)
    good = root / "good"
    sandbox = root / case.name
    shutil.rmtree(sandbox, ignore_errors=True)
    sandbox.mkdir(parents=True)
    if case.prepare is not None:
        case.prepare(sandbox, good)
    if case.status == (0,):  # the run uses the sandbox's own (corrupt) cache
        env = {**env, "GAN_LAB_CACHE": str(sandbox / "cache")}
    before = {**_digests(sandbox), **{f"good/{k}": v for k, v in _digests(good).items()}}
    logs = {p: p.read_bytes() for p in sandbox.rglob("*.log")}
    args = [a.format(sandbox=sandbox, good=good) for a in case.args]
    done = subprocess.run([*GAN_LAB, *args], capture_output=True, text=True, env=env, cwd=sandbox)
    output = done.stdout + done.stderr
    grown = {str(p.relative_to(sandbox)) for p, text in logs.items() if p.read_bytes().startswith(text)}
    after = {**_digests(sandbox), **{f"good/{k}": v for k, v in _digests(good).items()}}
    failures = []
    if done.returncode not in case.status:
        failures.append(f"exit status {done.returncode}, expected {' or '.join(map(str, case.status))}")
    if "Traceback" in output:
        failures.append("a traceback")
    if case.names not in output:
        failures.append(f"the output does not name {case.names!r}")
    if case.check is None:  # a log may grow (Hydra logs the refused resume into the run's train.log)
        changed = [name for name, digest in before.items()
                   if after.get(name) != digest and not (name.endswith(".log") and name in grown)]
        if changed:
            failures.append(f"changed: {', '.join(changed[:3])}")
    elif (problem := case.check(sandbox, output)) is not None:
        failures.append(problem)
    return Outcome(case, done.returncode, error_line(output), failures)
