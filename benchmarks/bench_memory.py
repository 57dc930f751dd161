"""Peak resident memory of a full 50-network, 8000-epoch run recording EBAB at all 274 epochs,
measured in a child process (its ru_maxrss), and its wall time.

    python benchmarks/bench_memory.py            # the full run (about 5 minutes)
    python benchmarks/bench_memory.py --epochs 800   # shorter
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import save

CHILD = """
import json, resource, time, torch
torch.set_num_threads(2)
from ibtools.config import TrainConfig
from ibtools.engine import train
t0 = time.time()
r = train(TrainConfig(activation="relu", seeds=tuple(range(50)), epochs={epochs}), progress=False)
print(json.dumps({{"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "wall_s": time.time() - t0, "recorded_epochs": int(len(r.epochs))}}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8000)
    args = parser.parse_args()
    out = subprocess.run([sys.executable, "-c", CHILD.format(epochs=args.epochs)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["epochs"] = args.epochs
    print(f"50 networks x {args.epochs} epochs, EBAB at {result['recorded_epochs']} epochs: peak resident "
          f"{result['peak_rss_mb']:.0f} MB, {result['wall_s']:.0f} s")
    print("written", save("memory", result))


if __name__ == "__main__":
    main()
