"""gan-lab's FID, IS and KID of a checkpoint next to torch-fidelity's on the very same images.

Evaluates N samples through gan-lab's metrics library exactly as ``gan-lab eval ckpt=...
eval.num_samples=N`` does (same seed, same generator, the first N real images of the run's dataset
split), then computes the same metrics with torch-fidelity on the very images gan-lab measured, from
the same weights file. Without the real Inception weights
(torch hub cache or --weights) it uses seeded stand-in weights of the same architecture: the numbers
then only show that the two pipelines agree.

    python scripts/agree_fidelity.py outputs/<run> --n 1000
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch_fidelity
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from gan_lab.engine.restore import restore
from gan_lab.metrics.evaluate import Evaluation, available_metrics, real_data, to_uint8
from gan_lab.metrics.inception import ImageTensors, weights_or_stand_in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", help="checkpoint file or run directory")
    parser.add_argument("--n", type=int, default=1000, help="generated and real images")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0, help="as gan-lab eval's seed")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--weights", default=None, help="Inception weights file (default: hub cache, else seeded)")
    args = parser.parse_args()

    weights, kind = weights_or_stand_in(args.weights)
    device = torch.device("cpu")
    kid_subset = min(1000, args.n)
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        ev = compose("eval", overrides=[
            f"ckpt={args.ckpt}", f"eval.num_samples={args.n}", f"eval.batch_size={args.batch_size}",
            f"eval.split={args.split}", f"eval.inception_weights={weights}", "eval.download=false",
            f"eval.available.kid.subset_size={kid_subset}", f"eval.cache_dir={tempfile.mkdtemp()}"]).eval
    run = restore(args.ckpt, device)
    dataset = OmegaConf.to_container(run.config.dataset, resolve=True)
    evaluation = Evaluation(run.task, run.generator, real_data(dataset, args.split), ev, device, dataset,
                            seed=args.seed)
    first = evaluation.sets[0]
    fake, real = to_uint8(evaluation.outputs(first).fake), to_uint8(first.real)

    t0 = time.perf_counter()
    ours = evaluation.run(evaluation.select(available_metrics(ev), ["fid", "is", "kid"]))
    t1 = time.perf_counter()
    rgb = [x.expand(-1, 3, -1, -1) for x in (fake, real)]  # torch-fidelity takes 3 channels
    theirs = torch_fidelity.calculate_metrics(
        input1=ImageTensors(rgb[0]), input2=ImageTensors(rgb[1]), fid=True, isc=True, kid=True,
        kid_subset_size=kid_subset, batch_size=args.batch_size, cuda=False, verbose=False, cache=False,
        feature_extractor_weights_path=str(weights))
    t2 = time.perf_counter()

    table = Table(title=f"{run.path} (step {run.step}): {args.n} samples vs {args.n} real ({args.split}), "
                        f"{kind} Inception weights")
    for col in ("metric", "gan-lab", "torch-fidelity", "relative difference"):
        table.add_column(col, justify="right")
    pairs = {"FID": "frechet_inception_distance", "IS": "inception_score_mean", "IS std": "inception_score_std",
             "KID": "kernel_inception_distance_mean", "KID std": "kernel_inception_distance_std"}
    for name, key in pairs.items():
        a, b = ours[name], theirs[key]
        table.add_row(name, f"{a:.6g}", f"{b:.6g}", f"{abs(a - b) / abs(b):.2e}")
    table.add_row("seconds", f"{t1 - t0:.0f}", f"{t2 - t1:.0f}", "")
    Console().print(table)


if __name__ == "__main__":
    main()
