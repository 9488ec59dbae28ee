"""Speed of FID evaluation: gan-lab next to torch-fidelity on the same images, weights and device.

Prints Inception feature-extraction images/s and the total time of one FID between
two sets of N images, for both, with the ratio. Without the real Inception weights
(pt_inception-2015-12-05-6726825d.pth in the torch hub cache or --weights) it uses
seeded stand-in weights of the same architecture: the speed is the same.

    python scripts/bench_eval.py --n 500
"""

from __future__ import annotations

import argparse
import time

import torch
import torch_fidelity
from rich.console import Console
from rich.table import Table

from gan_lab.data.shapes import Shapes
from gan_lab.metrics.fid import fid_from_features
from gan_lab.metrics.inception import ImageTensors, InceptionFeatures, weights_or_stand_in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="images per set")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--weights", default=None, help="Inception weights file (default: hub cache, else seeded)")
    args = parser.parse_args()

    weights, kind = weights_or_stand_in(args.weights)
    a = Shapes(image_size=32, count=args.n, seed=1).tensors["real"]
    b = Shapes(image_size=32, count=args.n, seed=2).tensors["real"]

    t0 = time.perf_counter()
    net = InceptionFeatures(weights, args.device)
    t1 = time.perf_counter()
    fa, fb = net.extract(a, args.batch_size)[0], net.extract(b, args.batch_size)[0]
    t2 = time.perf_counter()
    ours = fid_from_features(fa, fb)
    t3 = time.perf_counter()

    theirs = torch_fidelity.calculate_metrics(
        input1=ImageTensors(a), input2=ImageTensors(b), fid=True, cuda=args.device.startswith("cuda"), verbose=False,
        batch_size=args.batch_size, feature_extractor_weights_path=str(weights), cache=False)
    t4 = time.perf_counter()

    table = Table(title=f"FID of 2 x {args.n} 32 px images on {args.device} ({kind} Inception weights)")
    for col in ("", "features images/s", "total seconds", "FID"):
        table.add_column(col, justify="right")
    ours_rate = 2 * args.n / (t2 - t1)
    theirs_total = t4 - t3
    table.add_row("gan-lab", f"{ours_rate:.1f}", f"{t3 - t0:.1f}", f"{ours:.4f}")
    table.add_row("torch-fidelity", f"{2 * args.n / theirs_total:.1f}*", f"{theirs_total:.1f}",
                  f"{theirs['frechet_inception_distance']:.4f}")
    table.add_row("ratio", f"{ours_rate / (2 * args.n / theirs_total):.2f}x", f"{theirs_total / (t3 - t0):.2f}x", "")
    Console(width=110).print(table)
    print("* torch-fidelity's rate includes its model setup and FID computation (it reports no split)")


if __name__ == "__main__":
    main()
