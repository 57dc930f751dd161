"""Run every benchmark (about 15 minutes on 2 cores). Results go to benchmarks/results/*.json."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
for script in ("bench_estimators.py", "bench_training.py", "bench_distributed.py", "bench_memory.py", "bench_mixture.py"):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True, cwd=HERE)
