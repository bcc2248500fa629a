"""Does the default retrieval carry beyond SciFact? The configurations on two labelled sets of Python docs.

    python benchmarks/domains.py                 # 2.5 min on 2 busy cores the first time, 15 s once cached
    python benchmarks/domains.py --configs dense,bm25,hybrid
    python benchmarks/domains.py --thresholds    # also the relevance threshold's rates (4 more minutes)

The sets (hand-written questions; only the answerable ones are scored):
- Python reference: the workbook's 184 answerable questions (`ragkit/data/python-reference`) over the 79
  Python Language Reference topics (`ragkit.eval.datasets.python_reference`), in heading chunks; a topic
  scores as its best chunk.
- Python stdlib: 105 answerable questions (`ragkit/data/python-stdlib`) over the docstrings of 29
  standard-library modules (`ragkit.eval.datasets.python_docstrings`, 775 on Python 3.11), one chunk each:
  short API documentation, a different domain from both SciFact's abstracts and the reference's prose.

What it prints:
1. One table: set x configuration, nDCG@10, recall@10, MRR@10 (`ragkit.eval.benchmark.benchmark`, then
   recall@10 from the same runs with `ragkit.eval.metrics`).
2. Per set, issue 7's check: the default configuration (`ragkit.eval.benchmark.DEFAULT_CONFIG`, what
   `ragkit ask` and the notebooks use) must lose no more than 0.01 nDCG@10 to the better of dense-only
   and BM25-only (PASS/FAIL), with the paired test of the default against dense (bootstrap CI,
   randomisation p).

3. With --thresholds, how the reranker's relevance threshold (`ragkit.rerankers.offline.THRESHOLD`) sorts every
   question, the unanswerable ones included: `ragkit.ask`'s retrieval and reranking (no generation),
   then, for each threshold, the share of answerable questions whose best chunk passes it and of
   unanswerable ones whose best chunk does not, and their mean (balanced accuracy: the 13-22
   unanswerable questions count as much as the 105-184 answerable ones). The threshold is chosen as
   the best balanced accuracy averaged over both sets among those that answer at least
   MIN_ANSWERED of each set's answerable questions: a workbook that says "not in the sources" to
   one answerable question in four is no use, and with so few unanswerable questions balanced
   accuracy alone swings on one or two of them. The rates and the rule live in
   `ragkit.eval.thresholds` (`threshold_rates`, `choose_threshold`), which chapter 3 also calibrates
   with; here they run on the fixed grid THRESHOLDS.

Caches go where ragkit keeps them ($RAGKIT_CACHE_DIR, default ~/.cache/ragkit), never the repo.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ragkit.eval.benchmark import CONFIGS, DEFAULT_CONFIG, Report, benchmark, parse_configs
from ragkit.chunking import chunk_documents
from ragkit.types import Chunk, Document
from ragkit.eval.datasets import Question, load_questions, python_docstrings, python_reference, questions_as_qrels
from ragkit.eval import evaluate, paired_test
from ragkit.eval.thresholds import MIN_ANSWERED, choose_threshold, threshold_rates
from ragkit.index import build_index
from ragkit.lexical import as_chunks
from ragkit.backends.local import LocalBackend
from ragkit.pipeline import ask
from ragkit.rerankers.offline import THRESHOLD

REPO = Path(__file__).resolve().parent.parent
WANTED = ("dense", "bm25", "hybrid", "dense+rerank", "hybrid+rerank")
METRICS = ("ndcg@10", "recall@10", "mrr@10")
TOLERANCE = 0.01  # nDCG@10 the default may lose to the better of dense and BM25 (issue 7)
THRESHOLDS = tuple(round(0.08 + 0.01 * i, 2) for i in range(18))  # 0.08 to 0.25


@dataclass(frozen=True)
class LabelledSet:
    """A corpus, as the chunks that are searched, and the hand-written questions about it."""

    name: str
    chunks: list[Chunk | Document]  # a Document is searched as one chunk
    questions: list[Question]


def labelled_sets() -> list[LabelledSet]:
    """Return the two sets: the Python reference in heading chunks, the stdlib docstrings one chunk each."""
    reference = python_reference()
    docstrings = python_docstrings()
    return [
        LabelledSet("python-reference", chunk_documents(reference, "heading"), load_questions(corpus=reference)),
        LabelledSet("python-stdlib", docstrings,
                    load_questions("python-stdlib", corpus=docstrings)),
    ]


def default_configs() -> list[str]:
    """The configurations to run: `WANTED` and the default, those that `ragkit.eval.benchmark` knows, in its order."""
    return parse_configs([c for c in (*WANTED, DEFAULT_CONFIG) if c in CONFIGS])


def run(labelled: LabelledSet, configs: list[str], backend) -> Report:
    answerable = [q for q in labelled.questions if q.answerable]
    return benchmark(labelled.chunks, {q.id: q.question for q in answerable}, questions_as_qrels(answerable),
                     configs, name=labelled.name, backend=backend, progress=True)


def table(reports: dict[str, Report]) -> pd.DataFrame:
    """Return set x configuration rows of nDCG@10, recall@10 and MRR@10, from each report's runs."""
    rows = []
    for name, report in reports.items():
        for config, run_ in report.runs.items():
            means = evaluate(report.qrels, run_, METRICS).mean()
            rows.append({"set": name, "config": config, **means.to_dict()})
    return pd.DataFrame(rows).set_index(["set", "config"])


def check(name: str, report: Report, config: str = DEFAULT_CONFIG) -> bool:
    """Print issue 7's check of `config` (default: the default) for one set; return whether it passes."""
    ndcg = report.table["ndcg@10"]
    if not {config, "dense", "bm25"} <= set(ndcg.index):
        print(f"{name}: run dense, bm25 and {config} to check {config}")
        return False
    better = max(ndcg["dense"], ndcg["bm25"])
    which = "dense" if ndcg["dense"] >= ndcg["bm25"] else "bm25"
    margin = ndcg[config] - better
    passed = margin >= -TOLERANCE
    per_query = report.per_query
    print(f"{name} ({report.info['queries']} questions): {config} {ndcg[config]:.4f} vs {which} "
          f"{better:.4f}: {margin:+.4f}, {'PASS' if passed else 'FAIL'} (may lose at most {TOLERANCE})")
    paired = paired_test(per_query[config]["ndcg@10"], per_query["dense"]["ndcg@10"])
    print(f"  {config} vs dense: {paired}")
    return passed


def best_scores(labelled: LabelledSet, backend) -> pd.DataFrame:
    """Return one row per question: whether it is answerable, and the reranker's best chunk score as
    `ragkit.ask` computes it (dense top 20 reranked, no threshold, no generation)."""
    index = build_index(as_chunks(labelled.chunks), backend, progress=False)
    rows = []
    for q in labelled.questions:
        result = ask(q.question, index, backend, threshold=0.0, answer=False)
        rows.append({"id": q.id, "answerable": q.answerable, "best": result.reranked[0].score})
    return pd.DataFrame(rows).set_index("id")


def report_thresholds(sets: list[LabelledSet], backend) -> float:
    """Print each set's threshold rates and their mean balanced accuracy; return the best threshold."""
    tables = {}
    for labelled in sets:
        tables[labelled.name] = threshold_rates(best_scores(labelled, backend), THRESHOLDS)
        counts = pd.Series([q.answerable for q in labelled.questions]).value_counts()
        print(f"\n{labelled.name} ({counts.get(True, 0)} answerable, {counts.get(False, 0)} unanswerable):")
        print(tables[labelled.name].to_string(float_format="{:.3f}".format))
    mean = pd.concat([t["balanced"] for t in tables.values()], axis=1).mean(axis=1)
    best = choose_threshold(list(tables.values()), MIN_ANSWERED)
    print("\nbalanced accuracy, mean over the sets: "
          + ", ".join(f"{t:g} {v:.3f}" for t, v in mean.items())
          + f"\nhighest without answering fewer than {MIN_ANSWERED:.0%} of a set's answerable questions: "
          + f"{best:g} (unconstrained: {float(mean.idxmax()):g}; ragkit uses {THRESHOLD:g})")
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", help=f"comma-separated, from {','.join(CONFIGS)} (default: {','.join(WANTED)} "
                                      "and the default configuration)")
    ap.add_argument("--thresholds", action="store_true", help="also print the relevance threshold's rates")
    args = ap.parse_args(argv)
    configs = parse_configs(args.configs) if args.configs else default_configs()

    backend = LocalBackend()
    started = time.perf_counter()
    sets = labelled_sets()
    reports = {s.name: run(s, configs, backend) for s in sets}
    print(f"(all runs: {time.perf_counter() - started:.0f} s)\n")
    for report in reports.values():
        info = report.info
        print(f"{report.name}: {info['queries']} questions, {info['documents']} documents, "
              f"{info['chunks']} chunks")
    print()
    with pd.option_context("display.float_format", "{:.4f}".format):
        print(table(reports))
    print(f"\nThe default ({DEFAULT_CONFIG}) against the better of dense and bm25, nDCG@10:")
    results = [check(name, report) for name, report in reports.items()]
    if args.thresholds:
        report_thresholds(sets, backend)
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
