"""Measuring: how good is a ranking, an answer, a configuration?

- `metrics`: recall@k, precision@k, MRR, hit rate, nDCG@k per query, as trec_eval computes them
- `paired`: is system A really better than B on the same queries? (bootstrap CI, randomisation test)
- `experiments`: one chunking configuration run through the pipeline and measured (chapter 5)
- `trec`: TREC run files and BEIR qrels files
- `answers`: token F1, an LLM judge, and the whole pipeline checked on a question set
- `beir`, `datasets`: BEIR benchmarks, and the workbook's labelled sets of Python documentation
- `benchmark`: retrieval configurations compared on labelled queries (`ragkit eval`)

>>> from ragkit.eval import evaluate, paired_test, summary
>>> summary(evaluate({"q": {"a": 1}}, {"q": ["a"]}, ["mrr@10"])).to_dict()
{'mrr@10': 1.0}
"""
from __future__ import annotations

from .answers import answer_checks, answer_summary, judge_answer, token_f1
from .beir import BeirDataset, load_beir
from .datasets import Question, load_questions, python_docstrings, python_reference, questions_as_qrels
from .metrics import evaluate, hit_rate_at_k, mrr_at_k, ndcg_at_k, precision_at_k, ranking, recall_at_k, run_from_hits, summary
from .paired import MeanCI, PairedResult, mean_ci, paired_test
from .trec import read_qrels_tsv, read_trec_run, write_trec_run

__all__ = [
    "BeirDataset", "MeanCI", "PairedResult", "Question", "answer_checks", "answer_summary", "evaluate", "hit_rate_at_k",
    "judge_answer", "load_beir", "load_questions", "mean_ci", "mrr_at_k", "ndcg_at_k", "paired_test", "precision_at_k",
    "python_docstrings", "python_reference", "questions_as_qrels", "ranking", "read_qrels_tsv", "read_trec_run",
    "recall_at_k", "run_from_hits", "summary", "token_f1", "write_trec_run",
]
