"""Startup cost of the CLI: `python train.py --help` and `--cfg job` against a minimal
Hydra app over the same config tree (the named peer), interleaved, median of N runs.

    python benchmarks/startup.py [--repeats 7]

Goal (issue "Performance"): `python train.py --help` within 1.5 s; heavy imports (torch,
lightning, sentence-transformers) belong inside the task, not at module top.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER = """
import hydra
from omegaconf import DictConfig

@hydra.main(version_base="1.3", config_path=%r, config_name="train")
def main(cfg: DictConfig) -> None:
    pass

if __name__ == "__main__":
    main()
"""


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        peer = Path(tmp) / "peer_app.py"
        peer.write_text(PEER % str(ROOT / "configs"))
        cases = {
            "train.py --help": [sys.executable, "train.py", "--help"],
            "train.py --cfg job": [sys.executable, "train.py", "--cfg", "job"],
            "peer --help (bare Hydra app)": [sys.executable, str(peer), "--help"],
            "peer --cfg job (bare Hydra app)": [sys.executable, str(peer), "--cfg", "job"],
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.repeats):  # interleaved: drift hits every case alike
            for name, cmd in cases.items():
                times[name].append(wall(cmd))
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, value in med.items():
        print(f"{name:34s} median {value:.3f} s  (min {min(times[name]):.3f})")
    print(
        f"--help overhead vs bare Hydra app: {med['train.py --help'] / med['peer --help (bare Hydra app)']:.2f}x"
    )
    print(
        f"--cfg job overhead vs bare Hydra app: {med['train.py --cfg job'] / med['peer --cfg job (bare Hydra app)']:.2f}x"
    )
    print(f"train.py --help: {med['train.py --help']:.2f} s (goal <= 1.5 s)")


if __name__ == "__main__":
    main()
