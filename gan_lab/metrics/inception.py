"""The FID Inception network: pool features (FID, KID, precision/recall) and logits (IS).

Heusel et al. 2017 ("GANs Trained by a Two Time-Scale Update Rule ...", TTUR) defined FID on the
pool_3 layer of the TensorFlow Inception graph of 2015-12-05. We run torch-fidelity's
``FeatureExtractorInceptionV3``, a faithful port of that graph: it takes uint8 images of any size,
resizes them to 299x299 exactly as the TF graph's bilinear resize does, and reproduces TF's pooling
quirks, so numbers are comparable with published ones. The logits are the 1008-way ones without the
bias, as in Salimans et al.'s Inception Score code (and torch-fidelity's ``logits_unbiased``).

Weights (``pt_inception-2015-12-05-6726825d.pth``: the TF graph's weights as converted by pytorch-fid;
torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` holds the same network) are looked up in
this order: an explicit path (config key ``eval.inception_weights``), the torch hub
cache, a download; when none works, ``WeightsNotFoundError`` says what to fetch and where to put it.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from gan_lab.errors import GanLabError

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth")
# torch-fidelity caches the same file under its release-asset name; accept it too.
_CACHE_NAMES = (WEIGHTS_FILE, "weights-inception-2015-12-05-6726825d.pth")
_FEATURES = ["2048", "logits_unbiased"]


class WeightsNotFoundError(GanLabError):
    """The Inception weights are neither at the given path, nor in the hub cache, nor downloadable."""


def _architecture():
    """torch-fidelity's network with its layers initialised but no weights loaded."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise GanLabError("FID, KID and IS need torch-fidelity: pip install torch-fidelity") from None

    class _Unloaded(FeatureExtractorInceptionV3):
        # The constructor always loads a file; skipping that lets us load with weights_only=True
        # ourselves and build the seeded stand-in file from the same key list.
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return _Unloaded("inception-v3-compat", _FEATURES, feature_extractor_weights_path=empty)


def _missing(reason: str) -> WeightsNotFoundError:
    hub = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE
    return WeightsNotFoundError(
        f"FID Inception weights not found: {reason}. Download {WEIGHTS_FILE} (about 91 MB) from "
        f"{WEIGHTS_URL} and either save it as {hub} or set eval.inception_weights=/path/to/{WEIGHTS_FILE}.")


def resolve_weights(path: str | Path | None = None, download: bool = True) -> Path:
    """The weights file: ``path`` if given (it must exist), else the hub cache, else a download."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            # A configured path that is wrong is a mistake to report, not to paper over with another file.
            raise _missing(f"eval.inception_weights={path} does not exist")
        return path
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for name in _CACHE_NAMES:
        if (checkpoints / name).is_file():
            return checkpoints / name
    if not download:
        raise _missing(f"not in {checkpoints} and downloading is disabled")
    target = checkpoints / WEIGHTS_FILE
    try:
        checkpoints.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(WEIGHTS_URL, str(target), progress=False)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad download a RuntimeError
        raise _missing(f"not in {checkpoints} and the download failed ({error})") from None
    return target


@contextlib.contextmanager
def _full_float32() -> Iterator[None]:
    """cuDNN convolutions default to TF32 on Ampere+, which moves FID; the TF graph is plain float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class InceptionFeatures:
    """Maps uint8 images (N, C, H, W), C in {1, 3}, to (pool (N, 2048), logits (N, 1008)) float32.

    1-channel images are replicated to 3 channels (grey RGB), the usual convention for MNIST-like data.
    """

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu",
                 download: bool = True):
        self.weights = resolve_weights(weights, download)
        net = _architecture()
        try:
            torch.nn.Module.load_state_dict(net, torch.load(self.weights, map_location="cpu", weights_only=True))
        except Exception as error:  # truncated file, foreign pickle, wrong keys: one message
            raise _missing(f"{self.weights} is not a readable Inception state dict ({error})") from None
        self.device = torch.device(device)
        # channels_last: ~1.5x faster on CPU (oneDNN) and GPU, features equal to ~1e-6.
        self.net = net.to(self.device, memory_format=torch.channels_last)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of one batch, on ``self.device``."""
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 images (N, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}")
        images = images.to(self.device, non_blocking=True)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        with _full_float32():
            pool, logits = self.net(images)
        return pool, logits

    def extract(self, images: torch.Tensor | Iterable[torch.Tensor],
                batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of all images (one tensor, split into batches, or an iterable of batches), on the CPU."""
        if isinstance(images, torch.Tensor):
            images = images.split(batch_size)
        pools, logits = [], []
        for batch in images:
            pool, logit = self(batch)
            pools.append(pool.cpu())
            logits.append(logit.cpu())
        return torch.cat(pools), torch.cat(logits)


def _calibrate_batch_norms(net: torch.nn.Module, images: torch.Tensor) -> None:
    """Set every batch norm's running statistics to those of its input on ``images``, in forward order.

    This is what training does to a real network; without it a deep random network maps all images
    to nearly the same features (spread ~4% of the mean), and KID/IS are then lost in rounding.
    """
    def set_statistics(bn: torch.nn.Module, inputs: tuple[torch.Tensor]) -> None:
        bn.running_mean.copy_(inputs[0].mean((0, 2, 3)))
        bn.running_var.copy_(inputs[0].var((0, 2, 3)))

    hooks = [m.register_forward_pre_hook(set_statistics) for m in net.modules()
             if isinstance(m, torch.nn.BatchNorm2d)]
    try:
        net(images)
    finally:
        for hook in hooks:
            hook.remove()


def make_seeded_weights(path: str | Path, seed: int = 0) -> Path:
    """Write a stand-in weights file: the real file's keys, shapes and dtypes, seeded random values.

    For tests where the real file cannot be fetched: gan-lab and torch-fidelity both load it, so their
    metrics can be compared, but its numbers mean nothing. He-normal convolutions, batch norms near
    identity with running statistics calibrated on seeded smooth random images of random brightness
    and contrast (dark backgrounds like MNIST's included), and logits that vary by ~1 between images.
    Like torch-fidelity's converted TF file, it has no ``num_batches_tracked`` entries.
    """
    gen = torch.Generator().manual_seed(seed)
    net = _architecture()
    with torch.no_grad():
        for key, value in net.state_dict().items():  # these tensors alias the network's own
            if value.dim() == 4:  # convolution: He-normal over its fan-in, so ReLU keeps the scale
                value.copy_(torch.randn(value.shape, generator=gen) * math.sqrt(2 / value[0].numel()))
            elif key == "fc.weight":
                value.copy_(torch.randn(value.shape, generator=gen) * (10 / math.sqrt(value.shape[1])))
            elif key.endswith("bn.weight"):
                value.copy_(1 + 0.1 * torch.randn(value.shape, generator=gen))
            elif key.endswith("bias"):
                value.copy_(0.1 * torch.randn(value.shape, generator=gen))
        blobs = F.interpolate(torch.rand(16, 3, 8, 8, generator=gen) * 2 - 1, size=32, mode="bilinear")
        level, contrast = torch.rand(2, 16, 1, 1, 1, generator=gen) * 255
        _calibrate_batch_norms(net, (level + contrast * blobs).clamp(0, 255).to(torch.uint8))
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


class ImageTensors(torch.utils.data.Dataset):
    """uint8 images (N, C, H, W) as a Dataset of (C, H, W) tensors: the input torch-fidelity takes,
    so the references can be run on exactly the images gan-lab evaluates."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def weights_or_stand_in(path: str | Path | None = None) -> tuple[Path, str]:
    """For the scripts: the real weights (``path`` or the hub cache, no download), else a seeded stand-in
    in a temporary folder; with ``"real"`` or ``"seeded stand-in"`` to say which."""
    try:
        return resolve_weights(path, download=False), "real"
    except WeightsNotFoundError:
        import tempfile

        return make_seeded_weights(Path(tempfile.mkdtemp()) / "seeded.pth"), "seeded stand-in"
