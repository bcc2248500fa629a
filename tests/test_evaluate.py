"""Retrieval metrics: hand-worked values, edge cases, and agreement with trec_eval (pytrec_eval)."""
from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.eval import (
    PairedResult,
    evaluate,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    paired_test,
    precision_at_k,
    ranking,
    read_qrels_tsv,
    read_trec_run,
    recall_at_k,
    run_from_hits,
    summary,
    write_trec_run,
)

L3 = math.log2(3)  # the discount of rank 2 is 1 / log2(2 + 1)


# --------------------------------------------------------------------------------------------------
# Hand-worked values


def test_binary_relevance_by_hand():
    qrels = {"q": {"a": 1, "c": 1, "e": 1}}  # three relevant documents; e is never retrieved
    run = {"q": ["a", "b", "c", "d"]}  # relevant at ranks 1 and 3
    df = evaluate(qrels, run, ["recall@2", "recall@4", "precision@2", "precision@4", "precision@10",
                               "mrr@10", "hit_rate@1", "ndcg@4"])
    row = df.loc["q"]
    assert row["recall@2"] == pytest.approx(1 / 3)  # a of {a, c, e}
    assert row["recall@4"] == pytest.approx(2 / 3)  # a, c of {a, c, e}
    assert row["precision@2"] == pytest.approx(1 / 2)  # a of [a, b]
    assert row["precision@4"] == pytest.approx(2 / 4)  # a, c of [a, b, c, d]
    assert row["precision@10"] == pytest.approx(2 / 10)  # k beyond the run: still divided by k (trec_eval)
    assert row["mrr@10"] == 1.0  # first relevant at rank 1
    assert row["hit_rate@1"] == 1.0
    # DCG@4 = 1/log2(2) + 1/log2(4) = 1 + 0.5 = 1.5
    # IDCG@4 = 1/log2(2) + 1/log2(3) + 1/log2(4) = 1 + 0.6309 + 0.5 = 2.1309  (three relevant, ideally on top)
    assert row["ndcg@4"] == pytest.approx(1.5 / (1 + 1 / L3 + 0.5))
    assert row["ndcg@4"] == pytest.approx(0.703918, abs=1e-6)


def test_graded_relevance_two_beats_one():
    qrels = {"q": {"a": 2, "b": 1}}
    best = ndcg_at_k(qrels, {"q": ["a", "b"]}, k=2)["q"]
    swapped = ndcg_at_k(qrels, {"q": ["b", "a"]}, k=2)["q"]
    assert best == pytest.approx(1.0)  # the ideal order: grade 2, then 1
    # DCG = 1/log2(2) + 2/log2(3) = 1 + 1.2619 = 2.2619; IDCG = 2/log2(2) + 1/log2(3) = 2 + 0.6309 = 2.6309
    assert swapped == pytest.approx((1 + 2 / L3) / (2 + 1 / L3))
    assert swapped == pytest.approx(0.859719, abs=1e-6)
    # Grades matter only to nDCG: recall and MRR see "relevant or not".
    for run in ({"q": ["a", "b"]}, {"q": ["b", "a"]}):
        assert recall_at_k(qrels, run, 2)["q"] == 1.0
        assert mrr_at_k(qrels, run, 10)["q"] == 1.0


def test_reciprocal_rank_and_its_cutoff():
    qrels = {"q": {"c": 1}}
    run = {"q": ["a", "b", "c"]}
    assert mrr_at_k(qrels, run, k=10)["q"] == pytest.approx(1 / 3)  # first relevant at rank 3
    assert mrr_at_k(qrels, run, k=2)["q"] == 0.0  # ... which is past the cut-off
    assert hit_rate_at_k(qrels, run, k=2)["q"] == 0.0
    assert hit_rate_at_k(qrels, run, k=3)["q"] == 1.0
    assert precision_at_k(qrels, run, k=3)["q"] == pytest.approx(1 / 3)


def test_ndcg_ideal_comes_from_all_judgements_not_just_retrieved():
    qrels = {"q": {"a": 1, "b": 3}}  # b (grade 3) is never retrieved
    # DCG@2 = 1/log2(2) = 1 ; IDCG@2 = 3/log2(2) + 1/log2(3) = 3.6309
    assert ndcg_at_k(qrels, {"q": ["a", "x"]}, k=2)["q"] == pytest.approx(1 / (3 + 1 / L3))


def test_summary_is_the_mean_over_queries():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    run = {"q1": ["a"], "q2": ["x", "b"], "q3": ["x"]}
    df = evaluate(qrels, run, ["mrr@10", "hit_rate@10"])
    assert list(df.index) == ["q1", "q2", "q3"] and df.index.name == "query"
    means = summary(df)
    assert means["mrr@10"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert means["hit_rate@10"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------------------------
# Edge cases


def test_ties_are_broken_by_doc_id_descending_like_trec_eval():
    assert ranking({"q": {"a": 0.5, "b": 0.5, "c": 0.5, "x": 0.9}}) == {"q": ["x", "c", "b", "a"]}
    # Ids compare as strings, code point by code point: "9" > "10".
    assert ranking({"q": {"10": 1.0, "9": 1.0}}) == {"q": ["9", "10"]}
    # So a relevant "a" tied with "b" and "c" is ranked third.
    assert mrr_at_k({"q": {"a": 1}}, {"q": {"a": 0.5, "b": 0.5, "c": 0.5}}, 10)["q"] == pytest.approx(1 / 3)


def test_the_order_of_a_dict_run_does_not_matter():
    scores = {"d1": 0.2, "d2": 0.9, "d3": 0.2, "d4": 0.5}
    reversed_scores = dict(reversed(list(scores.items())))
    qrels = {"q": {"d1": 1, "d3": 2}}
    a = evaluate(qrels, {"q": scores}, ["ndcg@3", "mrr@2"])
    b = evaluate(qrels, {"q": reversed_scores}, ["ndcg@3", "mrr@2"])
    pd.testing.assert_frame_equal(a, b)


def test_query_without_relevant_documents_scores_zero():
    df = evaluate({"q": {"a": 0, "b": 0}}, {"q": ["a", "b"]}, ["ndcg@10", "recall@10", "mrr@10",
                                                              "precision@10", "hit_rate@10"])
    assert df.loc["q"].tolist() == [0.0] * 5  # trec_eval's convention; no NaN, no division by zero


def test_missing_and_extra_queries():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": ["a"], "other": ["b"]}  # q2 not retrieved; "other" not judged
    df = evaluate(qrels, run, ["recall@10", "ndcg@10"])
    assert list(df.index) == ["q1", "q2"]
    assert df.loc["q2"].tolist() == [0.0, 0.0]
    assert df.loc["q1"].tolist() == [1.0, 1.0]


def test_empty_run_and_empty_rankings():
    qrels = {"q1": {"a": 1}, "q2": {"b": 2}}
    for run in ({}, {"q1": [], "q2": {}}):
        df = evaluate(qrels, run, ["ndcg@10", "recall@100", "mrr@10", "precision@5", "hit_rate@1", "mrr"])
        assert df.shape == (2, 6) and (df.to_numpy() == 0).all()


def test_empty_qrels():
    df = evaluate({}, {"q": ["a"]}, ["ndcg@10"])
    assert df.empty and list(df.columns) == ["ndcg@10"]
    with pytest.raises(ValueError, match="no queries"):
        summary(df)


def test_k_larger_than_the_run():
    qrels = {"q": {"a": 1, "b": 1}}
    run = {"q": ["a", "b"]}
    df = evaluate(qrels, run, ["recall@1000", "ndcg@1000", "precision@1000"])
    assert df.loc["q"].tolist() == [1.0, 1.0, pytest.approx(2 / 1000)]


def test_ranked_list_and_scores_agree():
    qrels = {"q": {"b": 1, "d": 2}}
    as_list = evaluate(qrels, {"q": ["c", "b", "a", "d"]}, ["ndcg@3", "mrr@10", "recall@2"])
    as_scores = evaluate(qrels, {"q": {"a": 0.2, "b": 0.7, "c": 0.9, "d": 0.1}}, ["ndcg@3", "mrr@10", "recall@2"])
    pd.testing.assert_frame_equal(as_list, as_scores)


def test_ids_are_compared_as_strings():
    df = evaluate({1: {2: 1}}, {1: [2]}, ["mrr@10"])
    assert df.to_dict("index") == {"1": {"mrr@10": 1.0}}


def test_metric_names_and_aliases():
    df = evaluate({"q": {"a": 1}}, {"q": ["a"]}, ["P@5", "MRR", "ndcg @ 3", "hit@1", "R@10", "ndcg@10", "ndcg@10"])
    assert list(df.columns) == ["precision@5", "mrr", "ndcg@3", "hit_rate@1", "recall@10", "ndcg@10"]
    with pytest.raises(ValueError, match=r"unknown metric 'map@10'.*ndcg@k"):
        evaluate({"q": {"a": 1}}, {"q": ["a"]}, ["map@10"])
    with pytest.raises(ValueError, match="at least 1"):
        evaluate({"q": {"a": 1}}, {"q": ["a"]}, ["ndcg@0"])


def test_bad_inputs_say_what_to_fix():
    qrels = {"q": {"a": 1}}
    with pytest.raises(ValueError, match="finite"):
        evaluate(qrels, {"q": {"a": float("nan")}})
    with pytest.raises(ValueError, match="twice"):
        evaluate(qrels, {"q": ["a", "b", "a"]})
    with pytest.raises(TypeError, match="ranked list"):
        evaluate(qrels, {"q": "a"})
    with pytest.raises(ValueError, match="integers"):
        evaluate({"q": {"a": 1.5}}, {"q": ["a"]})
    with pytest.raises(TypeError, match="not a number"):
        evaluate(qrels, {"q": {"a": "high"}})
    with pytest.warns(UserWarning, match="no query id of the run is in the qrels"):
        evaluate({"1": {"a": 1}}, {"q1": ["a"]})


def test_run_from_hits_scores_a_document_by_its_best_chunk():
    from ragkit.types import Chunk
    from ragkit.types import Hit

    def hit(doc, pos, score, rank):
        return Hit(Chunk(f"{doc}#{pos}", doc, doc, "text", pos, 0, 4), score, rank)

    hits = {"q": [hit("a", 1, 0.9, 1), hit("b", 0, 0.8, 2), hit("a", 0, 0.3, 3)]}
    assert run_from_hits(hits) == {"q": {"a": 0.9, "b": 0.8}}
    assert run_from_hits(hits, level="chunk") == {"q": {"a#1": 0.9, "b#0": 0.8, "a#0": 0.3}}


# --------------------------------------------------------------------------------------------------
# Agreement with an independent implementation: trec_eval's own C code, via pytrec_eval


def _trec_sorted(scores: dict[str, float]) -> list[str]:
    """trec_eval's order, written independently: score descending, then doc id descending."""
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


KS = (1, 2, 3, 5, 10, 20)
docs_st = st.lists(st.sampled_from([f"d{i}" for i in range(12)] + ["10", "9", "Z", "a"]),
                   min_size=1, max_size=16, unique=True)


@st.composite
def qrels_and_run(draw):
    qrels, run = {}, {}
    for q in range(draw(st.integers(1, 4))):
        judged = draw(docs_st)
        qrels[f"q{q}"] = {d: draw(st.sampled_from([0, 1, 1, 2, 3])) for d in judged}
        retrieved = draw(st.lists(st.sampled_from(judged + ["u1", "u2", "u3"]), max_size=18, unique=True))
        # few distinct scores, so ties are common
        run[f"q{q}"] = {d: draw(st.sampled_from([0.1, 0.5, 0.5, 1.0, -2.0, 0.123456789])) for d in retrieved}
    return qrels, run


@settings(max_examples=150, deadline=None)
@given(qrels_and_run())
def test_agrees_with_trec_eval(data):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels, run = data
    cut = ",".join(map(str, KS))
    measures = {f"ndcg_cut.{cut}", f"P.{cut}", f"recall.{cut}", f"success.{cut}", "recip_rank", "ndcg"}
    reference = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    ours = evaluate(qrels, run, [f"{m}@{k}" for m in ("ndcg", "precision", "recall", "hit_rate") for k in KS]
                    + ["mrr", "ndcg"])
    for qid, ref in reference.items():
        row = ours.loc[qid]
        for k in KS:
            assert row[f"ndcg@{k}"] == pytest.approx(ref[f"ndcg_cut_{k}"], abs=1e-6)
            assert row[f"precision@{k}"] == pytest.approx(ref[f"P_{k}"], abs=1e-6)
            assert row[f"recall@{k}"] == pytest.approx(ref[f"recall_{k}"], abs=1e-6)
            assert row[f"hit_rate@{k}"] == pytest.approx(ref[f"success_{k}"], abs=1e-6)
        assert row["mrr"] == pytest.approx(ref["recip_rank"], abs=1e-6)
        assert row["ndcg"] == pytest.approx(ref["ndcg"], abs=1e-6)
    # trec_eval has no reciprocal rank at a cut-off: give it the top k only, cut in trec_eval's order
    for k in (1, 3, 10):
        top = {q: {d: s[d] for d in _trec_sorted(s)[:k]} for q, s in run.items()}
        reference = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top)
        ours = mrr_at_k(qrels, run, k)
        for qid, ref in reference.items():
            assert ours[qid] == pytest.approx(ref["recip_rank"], abs=1e-6)
    for qid, scores in run.items():
        assert ranking(run)[qid] == _trec_sorted(scores)


def test_agrees_with_trec_eval_on_a_larger_seeded_run():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = random.Random(7)
    docs = [f"doc{i}" for i in range(300)]
    qrels = {f"q{q}": {d: rng.choice([0, 1, 1, 2]) for d in rng.sample(docs, rng.randint(1, 30))} for q in range(60)}
    run = {q: {d: round(rng.random(), 2) for d in rng.sample(docs, 150)} for q in qrels}  # rounding: ties
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "P.10"}).evaluate(run)
    ours = evaluate(qrels, run, ["ndcg@10", "recall@100", "precision@10"])
    ref = pd.DataFrame.from_dict(reference, orient="index")[["ndcg_cut_10", "recall_100", "P_10"]]
    np.testing.assert_allclose(ours.loc[ref.index].to_numpy(), ref.to_numpy(), atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Paired test


def test_paired_test_exact_p_value_by_hand():
    r = paired_test([0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, 0.5])
    # d = [0.4, 0.3, 0.2, 0.1], mean 0.25. Of the 2**4 = 16 sign flips only ++++ and ---- reach
    # |mean| >= 0.25 (flipping any one sign lowers the sum by at least 0.2), so p = 2 / 16.
    assert r.mean_diff == pytest.approx(0.25)
    assert r.p_value == pytest.approx(2 / 16)
    assert r.n == 4
    # every bootstrap mean lies between min(d) and max(d)
    assert 0.1 - 1e-12 <= r.ci_low <= r.mean_diff <= r.ci_high <= 0.4 + 1e-12
    assert isinstance(r, PairedResult) and "p = 0.1250" in str(r)


def test_paired_test_agrees_with_scipy_permutation_test():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.random(10), rng.random(10)
    ours = paired_test(a, b)  # 2**10 <= 10000: exact
    ref = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
                                 permutation_type="samples", n_resamples=np.inf, alternative="two-sided")
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-9)
    boot = stats.bootstrap((a - b,), np.mean, n_resamples=20_000, method="percentile", random_state=1)
    assert ours.ci_low == pytest.approx(boot.confidence_interval.low, abs=0.02)
    assert ours.ci_high == pytest.approx(boot.confidence_interval.high, abs=0.02)


def test_paired_test_is_deterministic_given_the_seed():
    rng = np.random.default_rng(0)
    a, b = rng.random(200), rng.random(200) * 0.9
    assert paired_test(a, b, seed=5) == paired_test(a, b, seed=5)
    assert paired_test(a, b, seed=5) != paired_test(a, b, seed=6)


def test_paired_test_monte_carlo_matches_exact():
    rng = np.random.default_rng(1)
    a, b = rng.random(12), rng.random(12)
    exact = paired_test(a, b, n_resamples=5000)  # 2**12 = 4096 <= 5000: enumerated
    sampled = paired_test(a, b, n_resamples=4000)  # 4000 < 4096: random sign flips
    assert sampled.p_value == pytest.approx(exact.p_value, abs=0.03)


def test_paired_test_clear_and_null_effects():
    rng = np.random.default_rng(2)
    base = rng.random(300)
    better = paired_test(base + 0.05 + rng.normal(0, 0.02, 300), base, n_resamples=2000)
    assert better.p_value == pytest.approx(1 / 2001)  # no sign flip comes close: the smallest p possible
    assert 0 < better.ci_low < better.mean_diff < better.ci_high
    same = paired_test(base, base)
    assert (same.mean_diff, same.ci_low, same.ci_high, same.p_value) == (0, 0, 0, 1)


def test_paired_test_aligns_series_by_query():
    a = pd.Series([0.9, 0.1, 0.5], index=["q1", "q2", "q3"])
    b = pd.Series([0.4, 0.3, 0.2], index=["q3", "q2", "q1"])  # same queries, other order
    assert paired_test(a, b).mean_diff == pytest.approx(((0.9 - 0.2) + (0.1 - 0.3) + (0.5 - 0.4)) / 3)
    with pytest.raises(ValueError, match="same queries"):
        paired_test(a, b.drop("q2"))
    with pytest.raises(ValueError, match="one length"):
        paired_test([1, 2], [1])
    with pytest.raises(ValueError, match="no queries"):
        paired_test([], [])


# --------------------------------------------------------------------------------------------------
# Files


def test_write_trec_run_by_hand(tmp_path):
    path = write_trec_run({"q1": {"a": 0.5, "b": 0.5, "c": 0.1 + 0.2}, "q2": ["z", "y"]}, tmp_path / "run.trec",
                          tag="bm25", depth=2)
    assert path.read_text() == (
        "q1 Q0 b 1 0.5 bm25\n"  # tie at 0.5: doc id descending
        "q1 Q0 a 2 0.5 bm25\n"  # c (0.30000000000000004) is cut by depth=2
        "q2 Q0 z 1 2.0 bm25\n"  # a ranked list gets scores n, n-1, ...
        "q2 Q0 y 2 1.0 bm25\n"
    )


def test_trec_run_round_trip_keeps_scores_exactly(tmp_path):
    rng = np.random.default_rng(0)
    run = {f"q{i}": {f"d{j}": float(rng.random()) for j in range(30)} for i in range(5)}
    back = read_trec_run(write_trec_run(run, tmp_path / "r.trec", depth=1000))
    assert back == run
    assert ranking(read_trec_run(write_trec_run(run, tmp_path / "r10.trec", depth=10)))["q0"] == ranking(run)["q0"][:10]


def test_trec_run_file_is_what_trec_eval_reads(tmp_path):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels = {"q1": {"a": 1, "c": 2}, "q2": {"x": 1}}
    run = {"q1": {"a": 0.5, "b": 0.5, "c": 0.25}, "q2": ["y", "x"]}
    path = write_trec_run(run, tmp_path / "run.trec")
    with open(path) as f:
        parsed = pytrec_eval.parse_run(f)
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(parsed)
    ours = ndcg_at_k(qrels, run, 10)
    for qid in qrels:
        assert ours[qid] == pytest.approx(reference[qid]["ndcg_cut_10"], abs=1e-9)


def test_trec_run_errors_name_the_line(tmp_path):
    with pytest.raises(ValueError, match="one word"):
        write_trec_run({"q": ["a"]}, tmp_path / "x", tag="my run")
    with pytest.raises(ValueError, match="white space"):
        write_trec_run({"q": ["doc one"]}, tmp_path / "x")
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 a 1 0.5 t\nq1 Q0 b 2 0.4\n")
    with pytest.raises(ValueError, match=r"bad.trec:2: expected 6 fields"):
        read_trec_run(bad)
    bad.write_text("q1 Q0 a 1 0.5 t\nq1 Q0 a 2 0.4 t\n")
    with pytest.raises(ValueError, match=r"bad.trec:2: 'a' appears twice"):
        read_trec_run(bad)
    bad.write_text("q1 Q0 a 1 high t\n")
    with pytest.raises(ValueError, match="not a number"):
        read_trec_run(bad)


def test_read_qrels_tsv(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\n1\t31715818\t1\n1\t14717500\t2\n3\t23389795\t0\n")
    assert read_qrels_tsv(path) == {"1": {"31715818": 1, "14717500": 2}, "3": {"23389795": 0}}
    path.write_text("1\td\t1\n")  # no header
    assert read_qrels_tsv(path) == {"1": {"d": 1}}
    path.write_text("query-id\tcorpus-id\tscore\n1\td\tyes\n")
    with pytest.raises(ValueError, match=r"test.tsv:2: grade 'yes' is not an integer"):
        read_qrels_tsv(path)
    path.write_text("1 d 1\n")
    with pytest.raises(ValueError, match="3 tab-separated fields"):
        read_qrels_tsv(path)
