"""Start-up times of the VisCy packages and the ``dynaclr`` CLI, each measured in a fresh subprocess.

Usage: ``uv run python benchmarks/startup.py [--repeats N] [--all-transforms] [--top K] [--baseline DIR]``.

Prints, per command, the wall time (median over the repeats), whether it imported MONAI, and the ``K``
top-level packages with the largest cumulative import time (from ``python -X importtime``, which is how the
commands are run). The cases are those of the start-up goals: ``import viscy_transforms``, single transforms
(MONAI-free ones and a MONAI wrapper), the data modules, ``dynaclr --help`` and ``dynaclr fit --help`` (the first
request, which renders the help with Lightning, and a later one, answered from ``viscy_utils.help_cache``, both
with a temporary cache folder); ``import torch`` and ``import monai`` give the floor. ``--all-transforms`` times
every name of ``viscy_transforms.__all__``.
``--baseline DIR`` also runs every command against the sources of another checkout (e.g. ``git archive REV | tar
-x -C DIR``; its ``packages/*/src`` and ``applications/*/src`` are put first on ``PYTHONPATH``), alternating with
the current sources, and prints both times and their ratio.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = [sys.executable, "-X", "importtime"]
REFERENCE = {
    "import torch (floor)": [*PYTHON, "-c", "import torch"],
    "import monai (reference)": [*PYTHON, "-c", "import monai"],
}
COMMANDS = {
    "import viscy_transforms": [*PYTHON, "-c", "import viscy_transforms"],
    "from viscy_transforms import BatchedRandFlip": [*PYTHON, "-c", "from viscy_transforms import BatchedRandFlip"],
    "from viscy_transforms import BatchedRandAffined": [
        *PYTHON,
        "-c",
        "from viscy_transforms import BatchedRandAffined",
    ],
    "from viscy_transforms import BatchedCenterSpatialCropd": [
        *PYTHON,
        "-c",
        "from viscy_transforms import BatchedCenterSpatialCropd",
    ],
    "from viscy_transforms import RandAffined (wraps MONAI)": [
        *PYTHON,
        "-c",
        "from viscy_transforms import RandAffined",
    ],
    "import viscy_data": [*PYTHON, "-c", "import viscy_data"],
    "from dynaclr.datamodule import MultiExperimentDataModule": [
        *PYTHON,
        "-c",
        "from dynaclr.datamodule import MultiExperimentDataModule",
    ],
    "dynaclr --help": [*PYTHON, "-m", "dynaclr.cli", "--help"],
    "dynaclr fit --help, first request": [*PYTHON, "-m", "dynaclr.cli", "fit", "--help"],
    "dynaclr fit --help, cached": [*PYTHON, "-m", "dynaclr.cli", "fit", "--help"],
}
FRESH_HELP_CACHE = {"dynaclr fit --help, first request"}
"""Commands run with an empty help cache (``viscy_utils.help_cache``) every time; the others share one."""
# "import time: self [us] | cumulative [us] | <indent>package" lines of -X importtime (indent: import depth)
_IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)$")


def run(
    command: list[str], repeats: int, env: dict, fresh_help_cache: bool = False
) -> tuple[float, list[tuple[float, str]], bool]:
    """Median wall time of ``command``, the top-level imports of its last run (slowest first), and whether
    it imported MONAI; with ``fresh_help_cache``, the help cache of ``env`` is emptied before every run."""
    times, stderr = [], ""
    for _ in range(repeats):
        if fresh_help_cache:
            shutil.rmtree(env["VISCY_CACHE_DIR"], ignore_errors=True)
        start = time.perf_counter()
        result = subprocess.run(
            command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        times.append(time.perf_counter() - start)
        stderr = result.stderr
    lines = [m for line in stderr.splitlines() if (m := _IMPORT_LINE.match(line))]
    top_level = sorted(((int(m[1]) / 1e6, m[3]) for m in lines if len(m[2]) == 0), reverse=True)
    return statistics.median(times), top_level, any(m[3] == "monai" for m in lines)


def baseline_env(root: Path, env: dict) -> dict:
    """``env`` with the VisCy packages imported from the checkout at ``root``."""
    sources = sorted(str(path) for path in root.glob("*/*/src") if path.is_dir())
    if not sources:
        raise SystemExit(f"--baseline {root}: no packages/*/src or applications/*/src folder found")
    return {**env, "PYTHONPATH": os.pathsep.join([*sources, env.get("PYTHONPATH", "")])}


def main() -> None:
    """Time each command and print one line per command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per command (median is printed)")
    parser.add_argument("--top", type=int, default=3, help="slowest top-level imports shown per command")
    parser.add_argument("--all-transforms", action="store_true", help="also time every exported transform")
    parser.add_argument("--no-reference", action="store_true", help="skip the torch / monai reference lines")
    parser.add_argument("--baseline", type=Path, help="checkout to compare with (see the module docstring)")
    args = parser.parse_args()
    commands = dict(COMMANDS) if args.no_reference else {**REFERENCE, **COMMANDS}
    if args.all_transforms:
        import viscy_transforms

        for name in viscy_transforms.__all__:
            commands[f"from viscy_transforms import {name}"] = [*PYTHON, "-c", f"from viscy_transforms import {name}"]
    cache = tempfile.TemporaryDirectory()
    env = {**os.environ, "VISCY_CACHE_DIR": cache.name}
    before_env = None if args.baseline is None else baseline_env(args.baseline, env)
    header = f"{'wall':>7}  {'MONAI':5}"
    if before_env is not None:
        header = f"{'before':>7}  {'MONAI':5}  {header}  {'ratio':>6}"
    print(f"{header}  command  [slowest top-level imports, cumulative s]")
    for label, command in commands.items():
        before = ""
        if before_env is not None:
            seconds, _, imported_monai = run(command, args.repeats, before_env, label in FRESH_HELP_CACHE)
            before = f"{seconds:7.2f}  {'yes' if imported_monai else 'no':5}  "
        seconds, imports, imported_monai = run(command, args.repeats, env, label in FRESH_HELP_CACHE)
        ratio = f"  {float(before.split()[0]) / seconds:5.1f}x" if before else ""
        slowest = ", ".join(f"{name} {cumulative:.1f}" for cumulative, name in imports[: args.top])
        print(f"{before}{seconds:7.2f}  {'yes' if imported_monai else 'no':5}{ratio}  {label}  [{slowest}]", flush=True)


if __name__ == "__main__":
    main()
