"""Chapter 8's measurement: every technique on every labelled set, against the default, question by question.

    python benchmarks/techniques.py                     # all techniques, all three sets (about 1 h cold on 2 cores)
    python benchmarks/techniques.py --sets python-stdlib --techniques dedupe,mmr
    python benchmarks/techniques.py --base hybrid+rerank@30 --out benchmarks/results/techniques-hybrid.json

Each set is measured by `ragkit.eval.techniques.measure` (what each technique changes, and what is tuned
by cross-validation, is in its docstring); the model work goes through ragkit's caches
($RAGKIT_CACHE_DIR), so a second run takes minutes. Printed: one table per set (nDCG@10, the paired
difference from the base with its 95% bootstrap interval and randomisation p-value, recall@100, model calls
and seconds per question). Written: `--out` (default benchmarks/results/techniques.json), every question's
scores (what an earlier run with the same base measured is kept, what is measured now replaced), which
chapter 8 reads instead of measuring again; `tests/test_techniques.py` checks the saved file.

The target (issue 17): a technique that lifts SciFact test to >= 0.75 nDCG@10 while losing no more than
0.01 on either Python set becomes the default. The last lines say whether one does.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

from ragkit import config
from ragkit.backends import LocalBackend
from ragkit.eval.results import (TARGET, TOLERANCE, against_target, format_techniques, load_results,
                                 save_results, techniques_table)
from ragkit.eval.techniques import BASE, PACKAGED_SETS, TECHNIQUES, labelled_set, measure

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"
OUT = REPO / "benchmarks" / "results" / "techniques.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join([*PACKAGED_SETS, "scifact"]))
    parser.add_argument("--techniques", default=",".join(TECHNIQUES))
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    backend = LocalBackend()
    measured, seconds = {}, {}
    if args.out.exists():  # measuring some techniques again keeps the others, if measured the same way
        before = load_results(args.out)
        if before.info.get("base") == args.base:
            measured, seconds = dict(before.measured), dict(before.info.get("seconds", {}))
    for name in args.sets.split(","):
        start = time.perf_counter()
        labelled = labelled_set(SCIFACT if name == "scifact" else name)
        now = measure(labelled, args.techniques.split(","), backend=backend, base=args.base, progress=True)
        measured[labelled.name] = {**measured.get(labelled.name, {}), **now}  # techniques not run now are kept
        seconds[labelled.name] = round(time.perf_counter() - start, 1)
        print(format_techniques(labelled.name, measured[labelled.name]), "\n", flush=True)
        info = {"date": datetime.date.today().isoformat(), "ragkit": config.version(), "base": args.base,
                "python": platform.python_version(), "embedding_model": backend.embedding_model,
                "rerank_model": backend.rerank_model, "chat_model": backend.chat_model, "seconds": seconds}
        save_results(args.out, measured, info)  # after each set: a later failure keeps what is done
    print(f"wrote {args.out}")
    verdict(techniques_table(measured))
    return 0


def verdict(table) -> None:
    """Print whether a technique reaches the target on SciFact without losing beyond the tolerance elsewhere."""
    if not (table["set"] == "scifact").any():
        print("(SciFact not measured: no verdict on the 0.75 target)")
        return
    for technique, row in against_target(table).iterrows():
        print(f"{technique:14s} SciFact {row['SciFact nDCG@10']:.4f}; worst difference on the Python sets "
              f"{row['worst difference, Python sets']:+.4f}: {'MEETS' if row['meets the bar'] else 'does not meet'} "
              f"the target (>= {TARGET}, >= -{TOLERANCE})")


if __name__ == "__main__":
    sys.exit(main())
