"""Peak resident memory of a run against the number of images: it must not grow with N.

    python benchmarks/memory.py [--images 20 2000] [--size 64] [--bands 8]

Each N runs in a fresh process (a small CNN, synthetic images generated on demand, partner
fill, M bands) and reports its peak RSS from getrusage. The per-image table itself is
N·2**M·8 bytes (and is the result, so it is kept); the row shows it next to the peak.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from torch import nn
from torch.utils.data import Dataset
from iaside.runtime import apply_malloc_fix
apply_malloc_fix()
import iaside
from iaside.data.base import ImageItem

class Synthetic(Dataset):
    '''Smooth random images made on demand from their index: nothing held in memory.'''
    def __init__(self, n, size): self.n, self.size, self.names = n, size, [f"synthetic[{i}]" for i in range(n)]
    def __len__(self): return self.n
    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        small = torch.rand(1, 3, 8, 8, generator=g)
        x = torch.nn.functional.interpolate(small, size=self.size, mode="bilinear", align_corners=False)[0]
        return ImageItem(x, i % 10, i, self.names[i])
    def fingerprint(self): return f"synthetic-{self.n}-{self.size}"

n, size, bands = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
r = iaside.explain(net, Synthetic(n, size), bands=bands, batch_size=256, n_bootstrap=200, show_progress=False)
print(json.dumps({"n": n, "seconds": time.perf_counter() - t0, "rss_before_mb": rss_before / 1024,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "table_mb": r.per_image["logp_nats"].nbytes / 2**20}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[20, 2000])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--bands", type=int, default=8)
    args = parser.parse_args()
    print(f"small CNN, synthetic {args.size}x{args.size} images, M={args.bands}, batch 256, partner fill\n")
    print("| N images | seconds | RSS after imports MB | peak RSS MB | per-image table MB |")
    print("|---|---|---|---|---|")
    for n in args.images:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n), str(args.size), str(args.bands)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {n} | {row['seconds']:.1f} | {row['rss_before_mb']:.0f} | {row['peak_rss_mb']:.0f} | "
            f"{row['table_mb']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
