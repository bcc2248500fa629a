"""How long the workbook takes to run, chapter by chapter: cold (empty caches, as a learner's first run
or a fresh Binder) and warm (the same caches again, as a second run or a room after `ragkit warmup`).

    python benchmarks/workbook.py                 # every chapter, cold then warm
    python benchmarks/workbook.py --only 03 06    # some chapters

Each chapter runs top to bottom in its own kernel with nbclient, as the test suite runs it, with one
cache folder shared by all chapters (a learner working through them in order has one). Printed: the
seconds per chapter, both totals, and warm / cold. The target: the whole workbook cold in 5 minutes on
2 cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ragkit import config

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TARGET_SECONDS = 300


def run(path: Path) -> float:
    """Execute one chapter in a fresh kernel; return its wall-clock seconds."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="chapter number prefixes, e.g. 03 06")
    args = parser.parse_args()
    paths = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if not args.only or p.name[:2] in args.only)
    with tempfile.TemporaryDirectory(prefix="ragkit-workbook-") as scratch:
        # The chat model stays where `ragkit warmup` put it (it lives under the cache folder by default).
        os.environ["RAGKIT_MODELS_DIR"] = str(config.settings().models_dir)
        os.environ["RAGKIT_CACHE_DIR"] = str(Path(scratch) / "cache")  # kernels inherit it
        os.environ["TMPDIR"] = scratch
        times = {}
        for round_ in ("cold", "warm"):
            for path in paths:
                seconds = run(path)
                times[(path.name, round_)] = seconds
                print(f"{round_:4s} {path.name:28s} {seconds:6.1f} s", file=sys.stderr, flush=True)
    cold = sum(s for (_, r), s in times.items() if r == "cold")
    warm = sum(s for (_, r), s in times.items() if r == "warm")
    print(f"\n{'chapter':28s} {'cold s':>8s} {'warm s':>8s}")
    for path in paths:
        print(f"{path.name:28s} {times[(path.name, 'cold')]:8.1f} {times[(path.name, 'warm')]:8.1f}")
    print(f"{'total':28s} {cold:8.1f} {warm:8.1f}   warm/cold {warm / cold:.2f}")
    if not args.only:
        verdict = "within" if cold <= TARGET_SECONDS else "OVER"
        print(f"cold run {verdict} the {TARGET_SECONDS / 60:.0f}-minute target ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
