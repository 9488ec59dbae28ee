"""Metrics: agreement with torch-fidelity on real MNIST, and each metric's defining properties.

The real FID Inception weights cannot be fetched here, so the agreement tests run gan-lab and
torch-fidelity on one seeded stand-in file with the real file's keys and shapes: that checks the
whole pipeline (loading, channel replication, resizing, features, metric arithmetic), not the
published numbers. The end-to-end comparison runs 1000 MNIST images (500 per set) through both
implementations: about five minutes on a 2-core CPU, where Inception runs at 4-8 images/s. The metric
arithmetic is also compared at 1000 samples per set on cheap features.
Tests that need torch-fidelity skip without it.
"""

from __future__ import annotations

import math
from urllib.error import URLError

import numpy as np
import pytest
import torch

from gan_lab.data.toy2d import mixture_modes
from gan_lab.metrics import inception
from gan_lab.metrics.fid import FeatureStats, feature_stats, fid_from_features, frechet_distance
from gan_lab.metrics.image_quality import gaussian_window, l1, psnr, ssim
from gan_lab.metrics.inception import ImageTensors, InceptionFeatures, WeightsNotFoundError, make_seeded_weights
from gan_lab.metrics.inception_score import inception_score
from gan_lab.metrics.kid import kernel_inception_distance
from gan_lab.metrics.precision_recall import precision_recall
from gan_lab.metrics.toy2d import mode_coverage
from tests.conftest import require_data

N_IMAGES = 500  # per set, through Inception (see the module docstring)
REL = 1e-3


@pytest.fixture(scope="module")
def mnist():
    """Two disjoint sets of real MNIST digits, uint8 (N, 1, 28, 28): train[:N] and test[:N]."""
    from torchvision.datasets import MNIST

    root = require_data("MNIST", "raw").parent.parent
    train = MNIST(str(root), train=True, download=False).data
    test = MNIST(str(root), train=False, download=False).data
    return train.unsqueeze(1), test.unsqueeze(1)


@pytest.fixture(scope="module")
def seeded_weights(tmp_path_factory):
    pytest.importorskip("torch_fidelity")
    return make_seeded_weights(tmp_path_factory.mktemp("inception") / inception.WEIGHTS_FILE, seed=0)


@pytest.fixture(scope="module")
def extractor(seeded_weights):
    return InceptionFeatures(seeded_weights, device="cpu")


@pytest.fixture(scope="module")
def inception_features(mnist, extractor):
    """gan-lab's (pool, logits) for each set, extracted once from 1-channel images."""
    return [extractor.extract(images[:N_IMAGES], batch_size=50) for images in mnist]


@pytest.fixture(scope="module")
def cheap_features(mnist):
    """1000 + 1000 real digits through a fixed random ReLU layer: 2048-d 'pool' and 1008 'logits'."""
    gen = torch.Generator().manual_seed(1)
    w_pool = torch.randn(784, 2048, generator=gen) / 28
    w_logits = torch.randn(2048, 1008, generator=gen) / 2048**0.5
    out = []
    for images in mnist:
        pool = torch.relu(images[:1000].flatten(1).float() / 255 @ w_pool - 0.5)
        out.append((pool, 20 * pool @ w_logits))
    return out


# --- agreement with torch-fidelity ---------------------------------------------------------------


def test_agrees_with_torch_fidelity_end_to_end(mnist, seeded_weights, inception_features):
    import torch_fidelity

    (pool_a, logits_a), (pool_b, _) = inception_features
    # The stand-in is not degenerate: features spread between images, as the real network's do.
    assert torch.isfinite(pool_a).all() and pool_a.std(0).mean() > 0.1 * pool_a.mean()
    ref = torch_fidelity.calculate_metrics(
        input1=ImageTensors(mnist[0][:N_IMAGES].expand(-1, 3, -1, -1)),
        input2=ImageTensors(mnist[1][:N_IMAGES].expand(-1, 3, -1, -1)),
        fid=True, isc=True, kid=True, kid_subset_size=N_IMAGES // 2, cuda=False,
        feature_extractor_weights_path=str(seeded_weights), save_cpu_ram=True, cache=False, verbose=False)
    kid_mean, kid_std = kernel_inception_distance(pool_a, pool_b, subset_size=N_IMAGES // 2)
    is_mean, is_std = inception_score(logits_a)
    assert fid_from_features(pool_a, pool_b) == pytest.approx(ref["frechet_inception_distance"], rel=REL)
    assert kid_mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=REL)
    assert kid_std == pytest.approx(ref["kernel_inception_distance_std"], rel=REL)
    assert is_mean == pytest.approx(ref["inception_score_mean"], rel=REL)
    assert is_std == pytest.approx(ref["inception_score_std"], rel=REL)
    assert is_mean > 1.1  # the stand-in's logits do vary between images


def test_extract_accepts_batches_and_grey_or_rgb(mnist, extractor, inception_features):
    rgb_batches = mnist[0][:8].expand(-1, 3, -1, -1).split(3)
    pool, logits = extractor.extract(rgb_batches)
    torch.testing.assert_close(pool, inception_features[0][0][:8], rtol=1e-4, atol=1e-5)
    # batches of 3 and of 50 can take different convolution kernels: float32 rounding through
    # Inception's layers moved logits by up to 1.6e-4 with one thread (OMP_NUM_THREADS=1)
    torch.testing.assert_close(logits, inception_features[0][1][:8], rtol=1e-4, atol=1e-3)
    assert logits.shape == (8, 1008) and pool.shape == (8, 2048)
    with pytest.raises(ValueError, match="uint8"):
        extractor(mnist[0][:2].float())


def test_metric_arithmetic_agrees_with_torch_fidelity_at_1000_samples(cheap_features):
    pytest.importorskip("torch_fidelity")
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric

    (pool_a, logits_a), (pool_b, _) = cheap_features
    ref_fid = fid_statistics_to_metric(fid_features_to_statistics(pool_a), fid_features_to_statistics(pool_b),
                                       verbose=False)["frechet_inception_distance"]
    assert fid_from_features(pool_a, pool_b) == pytest.approx(ref_fid, rel=1e-6)
    # torch-fidelity computes KID in the features' dtype; given float64 it shows that both draw the
    # same subsets and sum the same terms (in float32 its own rounding is ~1e-3 of this small KID).
    ref_kid = kid_features_to_metric(pool_a.double(), pool_b.double(), kid_subset_size=500, verbose=False)
    kid = kernel_inception_distance(pool_a, pool_b, subset_size=500)
    assert kid == pytest.approx((ref_kid["kernel_inception_distance_mean"],
                                 ref_kid["kernel_inception_distance_std"]), rel=1e-9)
    ref_is = isc_features_to_metric(logits_a)
    assert inception_score(logits_a) == pytest.approx(
        (ref_is["inception_score_mean"], ref_is["inception_score_std"]), rel=1e-9)
    # torch-fidelity's input1 is the generated set, input2 the real one.
    ref_prc = prc_features_to_metric(pool_b, pool_a, verbose=False)
    assert precision_recall(real=pool_a, fake=pool_b) == pytest.approx((ref_prc["precision"], ref_prc["recall"]))


# --- FID -----------------------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero_even_with_singular_covariance():
    features = torch.relu(torch.randn(200, 2048, generator=torch.Generator().manual_seed(0)))  # rank 199
    assert abs(fid_from_features(features, features)) < 1e-6


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    gen = torch.Generator().manual_seed(0)
    mu1, mu2, s1, s2 = torch.rand(4, 16, generator=gen, dtype=torch.float64) + 0.1
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum()
    assert frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(float(expected), rel=1e-12)


def test_frechet_distance_matches_scipy_sqrtm_for_full_covariances():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.RandomState(0)
    a, b = rng.randn(64, 64), rng.randn(64, 64)
    s1, s2 = a @ a.T / 64, b @ b.T / 64 + 0.1 * np.eye(64)
    mu1, mu2 = rng.randn(64), rng.randn(64)
    covmean = scipy_linalg.sqrtm(s1 @ s2).real
    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_streaming_statistics_equal_numpy_on_offset_features():
    x = torch.randn(1000, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 1e4
    stats = FeatureStats()
    for batch in x.split(64):
        stats.update(batch)
    mu, cov = stats.mean_cov()
    np.testing.assert_allclose(mu.numpy(), x.numpy().mean(0), rtol=1e-14)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.numpy(), rowvar=False), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(feature_stats(x)[1], cov)


# --- KID, IS -------------------------------------------------------------------------------------


def test_kid_near_zero_for_one_distribution_and_positive_for_shifted():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 600, 64, generator=gen)
    same, _ = kernel_inception_distance(x, y, subsets=20, subset_size=300)
    shifted, _ = kernel_inception_distance(x, y + 0.5, subsets=20, subset_size=300)
    assert abs(same) < 0.01 * shifted and shifted > 0.1
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(x[:10], y, subset_size=20)


def test_kid_is_reproducible_and_seed_dependent():
    x, y = torch.randn(2, 300, 16, generator=torch.Generator().manual_seed(0))
    first = kernel_inception_distance(x, y + 0.1, subsets=10, subset_size=100, seed=3)
    assert kernel_inception_distance(x, y + 0.1, subsets=10, subset_size=100, seed=3) == first
    assert kernel_inception_distance(x, y + 0.1, subsets=10, subset_size=100, seed=4) != first


def test_inception_score_bounds():
    classes, splits = 10, 10
    assert inception_score(torch.zeros(100, classes)) == pytest.approx((1.0, 0.0))
    confident = 100 * torch.eye(classes).repeat(splits, 1)  # every split holds each class once
    assert inception_score(confident, splits=splits, shuffle_seed=None) == pytest.approx((classes, 0.0))
    # So confident that the other classes' probabilities underflow to 0 even in float64.
    assert inception_score(1e4 * torch.eye(classes).repeat(splits, 1), splits=splits,
                           shuffle_seed=None) == pytest.approx((classes, 0.0))


# --- precision / recall, 2-D mixtures ------------------------------------------------------------


def test_precision_recall_identical_and_disjoint_sets():
    x = torch.randn(300, 32, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x.clone(), block=64) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0, block=64) == (0.0, 0.0)


def test_mode_coverage_on_the_grid():
    modes, std = mixture_modes("grid")
    assert mode_coverage(modes.repeat(4, 1), modes, std) == (25, 1.0)
    assert mode_coverage(modes[3].expand(100, 2), modes, std) == (1, 1.0)
    off = modes + torch.tensor([3.5 * std, 0.0])  # just outside the 3-std radius
    assert mode_coverage(off, modes, std) == (0, 0.0)
    assert mode_coverage(modes.repeat(4, 1), modes, std, min_count=5) == (0, 1.0)


# --- paired image quality ------------------------------------------------------------------------


def _ssim_by_windows(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two grey images, one 11x11 window at a time, written straight from Wang et al. eq. (13)."""
    w = np.outer(*(2 * [gaussian_window().numpy()]))
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_psnr_l1_known_values():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 24, 20, generator=gen)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert torch.isinf(psnr(x, x)).all() and (l1(x, x) == 0).all()
    # Constant images: no structure, so SSIM reduces to the luminance term (2ab + C1) / (a^2 + b^2 + C1).
    a, b = torch.full((1, 1, 16, 16), 0.3), torch.full((1, 1, 16, 16), 0.5)
    c1 = 0.01**2
    assert ssim(a, b).item() == pytest.approx((2 * 0.3 * 0.5 + c1) / (0.3**2 + 0.5**2 + c1), rel=1e-6)
    assert psnr(a, b).item() == pytest.approx(10 * math.log10(1 / 0.2**2), rel=1e-6)
    assert l1(a, b).item() == pytest.approx(0.2)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    expected = np.mean([_ssim_by_windows(x[0, c].double().numpy(), noisy[0, c].double().numpy()) for c in range(3)])
    assert ssim(x[:1], noisy[:1]).item() == pytest.approx(expected, rel=1e-5)
    assert 0 < expected < 0.99


# --- weights lookup ------------------------------------------------------------------------------


def test_weights_not_found_message(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError) as offline:
        InceptionFeatures(download=False)
    message = str(offline.value)
    assert inception.WEIGHTS_FILE in message and inception.WEIGHTS_URL in message
    assert str(tmp_path / "hub" / "checkpoints" / inception.WEIGHTS_FILE) in message
    assert "eval.inception_weights" in message

    def unreachable(*args, **kwargs):
        raise URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    with pytest.raises(WeightsNotFoundError, match="download failed"):
        inception.resolve_weights()
    with pytest.raises(WeightsNotFoundError, match="does-not-exist.pth"):
        inception.resolve_weights(tmp_path / "does-not-exist.pth")


def test_weights_found_in_hub_cache_and_bad_files_rejected(tmp_path, monkeypatch, seeded_weights):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    cached = tmp_path / "checkpoints" / inception.WEIGHTS_FILE
    cached.parent.mkdir()
    cached.write_bytes(seeded_weights.read_bytes())
    assert inception.resolve_weights(download=False) == cached
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(seeded_weights.read_bytes()[:4096])
    with pytest.raises(WeightsNotFoundError, match="not a readable"):
        InceptionFeatures(bad)


def test_seeded_weights_are_deterministic(tmp_path, seeded_weights):
    reference = torch.load(seeded_weights, weights_only=True)
    again = torch.load(make_seeded_weights(tmp_path / "again.pth", seed=0), weights_only=True)
    assert reference.keys() == again.keys()
    assert all(torch.equal(reference[k], again[k]) for k in reference)
    # The real file's layout (torch-fidelity's converter): float32 tensors, no num_batches_tracked.
    assert len(reference) == 472 and all(v.dtype == torch.float32 for v in reference.values())
