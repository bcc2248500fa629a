"""Files in the formats of trec_eval and BEIR: TREC run files and qrels.

- `write_trec_run` / `read_trec_run`: `qid Q0 docid rank score tag` per line (what trec_eval and ranx read).
- `read_qrels_tsv`: BEIR's judgements, `query-id corpus-id score` with tabs.

>>> import tempfile, pathlib
>>> path = write_trec_run({"q1": {"d1": 0.9, "d2": 0.3}}, pathlib.Path(tempfile.mkdtemp()) / "bm25.trec", tag="bm25")
>>> read_trec_run(path)
{'q1': {'d1': 0.9, 'd2': 0.3}}
"""
from __future__ import annotations

import re
from pathlib import Path

from ..files import atomic_write
from .metrics import Run, as_scores, trec_order

__all__ = ["read_qrels_tsv", "read_trec_run", "write_trec_run"]


_SPACE = re.compile(r"\s")


def write_trec_run(run: Run, path: str | Path, tag: str = "ragkit", depth: int = 100) -> Path:
    """Write the top `depth` of each query as a TREC run file, `qid Q0 docid rank score tag` per line.

    Scores are written exactly (shortest round-trip form), so trec_eval re-sorting by score gives
    back the same order; a ranked-list run gets scores n, n-1, ..., 1.

    >>> write_trec_run({"q1": {"d1": 0.9, "d2": 0.3}}, "runs/bm25.trec", tag="bm25")  # doctest: +SKIP
    PosixPath('runs/bm25.trec')
    """
    if not tag or _SPACE.search(tag):
        raise ValueError(f"tag {tag!r} must be one word without spaces, e.g. 'bm25'")
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    lines = []
    for qid, entry in run.items():
        qid = str(qid)
        docids, scores = as_scores(qid, entry)
        for name, value in [("query id", qid)] + [("doc id", d) for d in docids]:
            if not value or _SPACE.search(value):
                raise ValueError(f"{name} {value!r} is empty or has white space; a TREC run file cannot hold it")
        for rank, j in enumerate(trec_order(docids, scores)[:depth], start=1):
            lines.append(f"{qid} Q0 {docids[j]} {rank} {float(scores[j])!r} {tag}\n")
    path = Path(path)
    with atomic_write(path) as f:
        f.writelines(lines)
    return path


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Return the run {qid: {docid: score}} of a TREC run file (`qid Q0 docid rank score tag`).

    The rank column is ignored, as trec_eval ignores it: the order comes from the scores.

    >>> read_trec_run("runs/bm25.trec")["q1"]  # doctest: +SKIP
    {'d1': 0.9, 'd2': 0.3}
    """
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise ValueError(f"{path}:{number}: expected 6 fields 'qid Q0 docid rank score tag', "
                                 f"got {len(fields)}: {line.strip()[:80]!r}")
            qid, _, docid, _, score, _ = fields
            try:
                value = float(score)
            except ValueError:
                raise ValueError(f"{path}:{number}: score {score!r} is not a number") from None
            docs = run.setdefault(qid, {})
            if docid in docs:
                raise ValueError(f"{path}:{number}: {docid!r} appears twice for query {qid!r}")
            docs[docid] = value
    return run


def read_qrels_tsv(path: str | Path) -> dict[str, dict[str, int]]:
    """Return the qrels {qid: {docid: grade}} of a BEIR qrels file (`query-id corpus-id score`, tabs).

    The header line is optional. A pair listed twice keeps its last grade, as BEIR's loader does.

    >>> read_qrels_tsv("scifact/qrels/test.tsv")["1"]  # doctest: +SKIP
    {'31715818': 1}
    """
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if fields == [""]:
                continue
            if len(fields) != 3:
                raise ValueError(f"{path}:{number}: expected 3 tab-separated fields 'query-id corpus-id score', "
                                 f"got {len(fields)}: {line.strip()[:80]!r}")
            qid, docid, grade = (x.strip() for x in fields)
            if number == 1 and (qid, docid, grade) == ("query-id", "corpus-id", "score"):
                continue
            try:
                qrels.setdefault(qid, {})[docid] = int(grade)
            except ValueError:
                raise ValueError(f"{path}:{number}: grade {grade!r} is not an integer") from None
    return qrels
