"""Answers, not rankings: the whole pipeline on the workbook's labelled Python-reference questions.

    python benchmarks/answers.py                      # all 206 questions, local models, ~10 min on 2 cores
    python benchmarks/answers.py --limit 20           # a quick look
    OPENROUTER_API_KEY=... python benchmarks/answers.py --judge openai/gpt-4o-mini

For every question `ragkit.ask` retrieves, reranks, keeps what passes the reranker's threshold and
answers with checked citations. Printed (see `ragkit.eval.answers.answer_summary`):

- answered: answerable questions that got an answer rather than "not in the sources";
- cites a relevant document, citation precision: do the citations point at the topic that holds the
  answer (the labels are per topic, so this is the support check that needs no model);
- refused when absent: the 22 unanswerable questions (near-topic on purpose) answered "not in the
  sources", which is the right answer;
- token F1 against the short gold answers (SQuAD's normalisation; a refusal scores 0).

`--judge MODEL` adds an LLM judge (temperature 0, JSON verdict) through the HTTP backend configured
by the environment (OpenRouter with `OPENROUTER_API_KEY`, or `RAGKIT_BASE_URL`): is each answer
supported by the sources it cites, and does it agree with the gold answer. Use a model stronger than
the one that answers. `--csv FILE` writes the per-question rows.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import pandas as pd

import ragkit
from ragkit.cache import EmbeddingCache
from ragkit.eval.datasets import load_questions, python_reference
from ragkit.eval import answer_checks, answer_summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, help="only the first N answerable and N/8 unanswerable questions")
    p.add_argument("--judge", metavar="MODEL", help="an online chat model to judge the answers")
    p.add_argument("--csv", help="write one row per question here")
    args = p.parse_args(argv)

    backend = ragkit.backend()
    judge = None
    if args.judge:
        from ragkit.backends.openrouter import OpenRouterBackend

        if not (os.environ.get("OPENROUTER_API_KEY") or os.environ.get("RAGKIT_BASE_URL")):
            sys.exit("--judge needs OPENROUTER_API_KEY (or RAGKIT_BASE_URL pointing at another server)")
        judge = OpenRouterBackend.from_env(chat_model=args.judge)
    questions = load_questions()
    if args.limit:
        answerable = [q for q in questions if q.answerable][:args.limit]
        absent = [q for q in questions if not q.answerable][:max(1, args.limit // 8)]
        questions = answerable + absent
    index = ragkit.build_index(ragkit.chunk_documents(python_reference(), "heading"), backend,
                               EmbeddingCache())
    start = time.perf_counter()
    checks = answer_checks(questions, index, backend, judge=judge)
    seconds = time.perf_counter() - start

    print(f"\n{len(questions)} questions ({int(checks['answerable'].sum())} answerable), "
          f"{backend.chat_model} answering, reranker {backend.rerank_model}"
          + (f", judged by {args.judge}" if judge else "") + f": {seconds / len(questions):.1f} s a question")
    print(answer_summary(checks).round(3).to_string())
    print("\nHow each was answered:")
    print(pd.crosstab(checks["mode"], checks["answerable"].map({True: "answerable", False: "absent"}).rename("question")).to_string())
    if args.csv:
        checks.to_csv(args.csv)
        print(f"\nper-question rows: {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
