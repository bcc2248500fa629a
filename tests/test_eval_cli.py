"""`ragkit eval` end to end on a small BEIR folder the test writes: table, JSON, run files, caches, errors.

The run files are scored again by an independent implementation (pytrec_eval, trec_eval's code) and
must agree with the printed table.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ragkit.eval import benchmark as bench
from ragkit.eval import read_qrels_tsv, read_trec_run

DOCS = {
    "kettle": ("Kettles", "A kettle boils water. An electric kettle switches itself off when the water boils."),
    "toaster": ("Toasters", "A toaster browns slices of bread between glowing wires."),
    "fridge": ("Refrigerators", "A fridge keeps food cold by pumping heat out of an insulated box."),
    "oven": ("Ovens", "An oven bakes bread and roasts meat in hot air."),
    "microwave": ("Microwave ovens", "A microwave oven heats food quickly by making its water molecules vibrate."),
    "blender": ("Blenders", "A blender chops fruit into smoothies with a fast spinning blade."),
    "dishwasher": ("Dishwashers", "A dishwasher sprays hot soapy water over dirty plates and rinses them."),
    "freezer": ("Freezers", "A freezer keeps food frozen well below zero degrees for months."),
    "kettle-history": ("History of the kettle", "Early kettles were heated on a stove; the electric kettle came later."),
}
QUERIES = {
    "q1": "how do I boil water",
    "q2": "what keeps food cold",
    "q3": "bake bread",
    "q4": "heat food fast",
    "q5": "clean the plates",
    "q6": "make a smoothie",
}
QRELS = [("q1", "kettle", 2), ("q1", "kettle-history", 1), ("q2", "fridge", 1), ("q2", "freezer", 1),
         ("q3", "oven", 1), ("q3", "toaster", 1), ("q4", "microwave", 2), ("q4", "oven", 1),
         ("q5", "dishwasher", 1), ("q6", "blender", 1), ("q6", "fridge", 0)]
KEYS = ["config", "ndcg@10", "recall@100", "mrr@10", "qps", "default"]


def write_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for docid, (title, text) in DOCS.items():
            f.write(json.dumps({"_id": docid, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for qid, text in QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in QRELS))
    return folder


def ragkit(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in {"OPENROUTER_API_KEY", "RAGKIT_BASE_URL"}}
    return subprocess.run([sys.executable, "-m", "ragkit.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def pytrec_scores(qrels_path: Path, run_path: Path) -> dict[str, float]:
    """Mean nDCG@10, recall@100 and MRR@10 of a run file by pytrec_eval (MRR@10: recip_rank of the top 10)."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels = read_qrels_tsv(qrels_path)
    run = read_trec_run(run_path)
    # keep trec_eval's own order for the cut: score descending, ties by doc id descending
    top10 = {q: dict(sorted(d.items(), key=lambda x: (x[1], x[0]), reverse=True)[:10]) for q, d in run.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = len(qrels)  # trec_eval averages over the queries it has a ranking for; ours all have one
    return {"ndcg@10": sum(v["ndcg_cut_10"] for v in full.values()) / n,
            "recall@100": sum(v["recall_100"] for v in full.values()) / n,
            "mrr@10": sum(v["recip_rank"] for v in rr.values()) / n}


def test_eval_json_and_run_files_agree_with_an_independent_scorer(tmp_path):
    data = write_beir(tmp_path / "tiny")
    out = ragkit("eval", "--dataset", str(data), "--json", "--run-dir", "runs", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["config"] for r in rows] == list(bench.CONFIGS)
    assert all(list(r) == KEYS for r in rows)
    assert [r["config"] for r in rows if r["default"]] == ["dense+rerank"]
    assert all(0 <= r[m] <= 1 for r in rows for m in ("ndcg@10", "recall@100", "mrr@10")) and all(r["qps"] > 0 for r in rows)
    assert f"ragkit: wrote {len(bench.CONFIGS)} run files" in out.stderr
    for r in rows:
        path = tmp_path / "runs" / f"{r['config']}.trec"
        lines = path.read_text().splitlines()
        fields = [line.split() for line in lines]
        assert all(len(f) == 6 and f[1] == "Q0" and f[5] == r["config"] for f in fields)
        assert {f[0] for f in fields} == set(QUERIES)
        assert all(sum(f[0] == q for f in fields) == len(DOCS) for q in QUERIES)  # top 100 of 9 docs: all
        for q in QUERIES:  # ranks 1, 2, ... in score order
            scores = [float(f[4]) for f in fields if f[0] == q]
            assert [int(f[3]) for f in fields if f[0] == q] == list(range(1, len(DOCS) + 1))
            assert scores == sorted(scores, reverse=True)
        theirs = pytrec_scores(data / "qrels" / "test.tsv", path)
        for metric, value in theirs.items():
            assert r[metric] == pytest.approx(value, abs=1e-3), (r["config"], metric)
    # the words are easy here: every configuration finds the boiling kettle first
    assert all(r["mrr@10"] > 0.8 for r in rows)


def test_eval_prints_a_table_and_takes_a_subset_of_configs(tmp_path):
    data = write_beir(tmp_path / "tiny")
    out = ragkit("eval", "--dataset", str(data), "--configs", "bm25,hybrid", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("tiny (test): 6 queries, 9 documents")
    header = next(line for line in lines if line.startswith("config"))
    assert header.split() == ["config", "nDCG@10", "recall@100", "MRR@10", "queries/s"]
    assert [line.split()[0] for line in lines if line.startswith(("bm25", "hybrid", "dense"))] == ["bm25", "hybrid"]
    assert "*" not in out.stdout  # the default configuration was not run
    assert not (tmp_path / "runs").exists()


def test_second_run_reuses_the_embeddings_and_the_reranker_work(tmp_path, local_backend):
    data = write_beir(tmp_path / "tiny")
    first = bench.benchmark_beir(data, backend=local_backend, progress=False)
    again = bench.benchmark_beir(data, backend=local_backend, progress=False)
    assert first.info["embedded"] == len(DOCS) and again.info["embedded"] == 0
    assert first.info["pairs_computed"] > 0 and again.info["pairs_computed"] == 0
    assert again.info["pairs_cached"] == first.info["pairs_computed"]
    assert again.runs == first.runs
    assert (Path(os.environ["RAGKIT_CACHE_DIR"]) / "rerank-pairs.sqlite").is_file()
    result = first.paired("hybrid+rerank", "dense")
    assert result.n == len(QUERIES) and 0 <= result.p_value <= 1


def test_a_config_named_with_a_depth_reranks_that_many(tmp_path, local_backend):
    data = write_beir(tmp_path / "tiny")
    report = bench.benchmark_beir(data, configs="hybrid,hybrid+rerank,hybrid+rerank@5", backend=local_backend,
                                  rerank_top=2, progress=False)
    hybrid = report.rankings["hybrid"][0]
    for config, n in (("hybrid+rerank", 2), ("hybrid+rerank@5", 5)):
        reranked = report.rankings[config][0]
        assert (np.sort(reranked[:, :n], axis=1) == np.sort(hybrid[:, :n], axis=1)).all()  # the same top n
        assert (reranked[:, n:] == hybrid[:, n:]).all()  # the rest in first-stage order
    assert (report.rankings["hybrid+rerank@5"][0][:, :5] != hybrid[:, :5]).any()  # it did reorder
    assert set(report.info["rerank_seconds_by_depth"]) == {2, 5}
    assert "hybrid+rerank@5: top 5" in str(report)


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(bench, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_cached_reranker_scores_exactly_as_the_reranker(tmp_path, local_backend):
    from ragkit.rerankers import LocalReranker

    reranker = LocalReranker(local_backend.embedder)
    query, docs = "what keeps food cold", [t for _, t in DOCS.values()]
    cached = bench.CachedReranker(reranker, bench.PairCache(tmp_path / "pairs.sqlite"))
    cached.prepare([(query, d) for d in docs], progress=False)
    assert cached.computed == len(docs)
    np.testing.assert_allclose(cached.score(query, docs), reranker.score(query, docs), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(cached.score(query, docs[:3]), reranker.score(query, docs[:3]), rtol=1e-5, atol=1e-7)
    again = bench.CachedReranker(reranker, bench.PairCache(tmp_path / "pairs.sqlite"))
    again.prepare([(query, d) for d in docs], progress=False)
    assert again.computed == 0 and again.reused == len(docs)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "no/such/folder"], "no dataset folder at no/such/folder"),
    (["--dataset", "{data}", "--split", "dev"], "has no qrels/dev.tsv; its splits are: test"),
    (["--dataset", "{empty}"], "has no corpus.jsonl"),
    (["--dataset", "{data}", "--configs", "dense,colbert"], "unknown configuration 'colbert'"),
    (["--dataset", "{data}", "--k", "0"], "at least 1"),
])
def test_eval_errors_are_one_clear_line(tmp_path, args, message):
    data = write_beir(tmp_path / "tiny")
    (tmp_path / "empty").mkdir()
    out = ragkit("eval", *[a.format(data=data, empty=tmp_path / "empty") for a in args], cwd=tmp_path)
    assert out.returncode == 1
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_eval_offline_named_dataset_says_it_cannot_download(tmp_path, monkeypatch, capsys):
    from ragkit import cli
    from ragkit.eval import beir

    with socket.socket() as s:  # a port nobody listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(beir, "BEIR_URL", f"http://127.0.0.1:{port}/beir")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["eval", "--dataset", "scifact"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ragkit: eval: cannot download scifact") and "no network?" in err
    assert len(err.strip().splitlines()) == 1


def test_eval_help_lists_every_configuration(capsys):
    from ragkit.cli import main

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(c in text.replace(" ", "").replace("\n", "") for c in bench.CONFIGS), text
