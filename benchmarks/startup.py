"""Start-up times of the VisCy packages and the ``dynaclr`` CLI, each measured in a fresh subprocess.

Usage: ``uv run python benchmarks/startup.py [--repeats N]``. Prints the wall time of each command
(median over the repeats). For a per-module breakdown run one command with ``python -X importtime -c ...``.
"""

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import viscy_transforms": [sys.executable, "-c", "import viscy_transforms"],
    "from viscy_transforms import BatchedRandFlip": [
        sys.executable,
        "-c",
        "from viscy_transforms import BatchedRandFlip",
    ],
    "import viscy_data": [sys.executable, "-c", "import viscy_data"],
    "from dynaclr.datamodule import MultiExperimentDataModule": [
        sys.executable,
        "-c",
        "from dynaclr.datamodule import MultiExperimentDataModule",
    ],
    "dynaclr --help": [sys.executable, "-m", "dynaclr.cli", "--help"],
    "dynaclr fit --help": [sys.executable, "-m", "dynaclr.cli", "fit", "--help"],
}


def main() -> None:
    """Time each command and print one line per command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per command (median is printed)")
    args = parser.parse_args()
    for label, command in COMMANDS.items():
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        print(f"{statistics.median(times):7.2f} s  {label}")


if __name__ == "__main__":
    main()
