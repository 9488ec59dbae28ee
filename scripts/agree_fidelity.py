"""gan-lab's FID, IS and KID of a checkpoint next to torch-fidelity's on the very same images.

Draws N samples exactly as ``gan-lab eval ckpt=... eval.num_samples=N`` does (same seed, same
generator), takes the first N real images of the run's dataset split, and computes the metrics with
gan-lab and with torch-fidelity from the same weights file. Without the real Inception weights
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
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from gan_lab.engine.restore import restore
from gan_lab.eval import generate, image_metrics, real_data, to_uint8
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
    torch.manual_seed(args.seed)  # then the calls of gan-lab eval, in its order: the same random draws
    run = restore(args.ckpt, device)
    real = real_data(run, args.split).tensors["real"][: args.n].cpu()
    fake = to_uint8(generate(run, args.n, args.batch_size))
    kid_subset = min(1000, args.n)
    ev = OmegaConf.create({"inception_weights": str(weights), "download": False, "batch_size": args.batch_size,
                           "kid_subset_size": kid_subset, "cache_dir": tempfile.mkdtemp()})

    t0 = time.perf_counter()
    ours, _ = image_metrics(fake, real, ["fid", "is", "kid"], ev, device, {"script": "agree_fidelity"})
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
