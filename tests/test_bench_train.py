"""scripts/bench_train.py measures each run against the matmul rate of its own precision (nothing here depends
on how fast the machine is): bf16 runs against a bf16 matmul, fp32 runs against fp32, the same FLOPs counted
in both, and ``--compare`` prints one row per model with both precisions."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import bench_train  # noqa: E402

TINY = ["hardware=cpu", "train.batch_size=8", "dataset.count=64"]


@pytest.fixture(autouse=True)
def small_matmul(monkeypatch):
    """A 512² matmul window instead of 2048²: the same dtype logic, a fraction of the time."""
    rate = bench_train.matmul_rate
    monkeypatch.setattr(bench_train, "matmul_rate", lambda device, dtype=None: rate(device, dtype, n=512))


def _bench(model: str, *overrides: str) -> dict:
    return bench_train.bench_model(model, [*TINY, *overrides], warmup=1, windows=1, steps=1)


def test_each_precision_is_measured_against_its_own_matmul_rate():
    fp32, bf16 = _bench("dcgan", "hardware.precision=fp32"), _bench("dcgan", "hardware.precision=bf16")
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    assert fp32["gflop"] == bf16["gflop"] > 0  # autocast changes the dtype, not the arithmetic counted
    assert fp32["peak"] == fp32["fp32_peak"]  # the fp32 run's limit is the fp32 matmul itself
    assert bf16["peak"] != bf16["fp32_peak"]  # timed separately, in bf16
    for r in (fp32, bf16):
        assert r["share"] == pytest.approx(r["gflops"] / r["peak"])
        assert r["fp32_share"] == pytest.approx(r["gflops"] / r["fp32_peak"])
        assert r["img/s"] == pytest.approx(r["gflops"] / r["gflop"] * r["batch"])


def test_compare_prints_both_precisions_for_every_model(capsys):
    bench_train.main(["--compare", "--markdown", "--models", "gan", "wgan", "--warmup", "1", "--windows", "1",
                      "--steps", "1", "--", *TINY])
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in out.splitlines()
            if line.startswith("| gan ") or line.startswith("| wgan ")}
    assert set(rows) == {"gan", "wgan"}
    assert rows["gan"][0].strip() == "8" and rows["wgan"][0].strip() == "40"  # wgan: 5 critic batches per step
    for cells in rows.values():
        fp32, bf16, speedup = float(cells[1]), float(cells[3]), float(cells[6].strip().rstrip("x"))
        assert speedup == pytest.approx(bf16 / fp32, rel=0.06)  # both rounded for printing
    assert "median matmul GFLOP/s: fp32" in out and "bf16" in out
