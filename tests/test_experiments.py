"""Chapters 5 and 6's library parts: a mean's bootstrap interval, the chunking experiment, every
question reranked in one batch, and the plots of a sweep and of per-question change."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ragkit.cache import EmbeddingCache, PairCache  # noqa: E402
from ragkit.eval import mean_ci, paired_test  # noqa: E402
from ragkit.eval.experiments import experiment, quality_with_ci, rerank_all  # noqa: E402
from ragkit.pipeline import rerank  # noqa: E402
from ragkit.types import Document  # noqa: E402
from ragkit.workbook.plots import metric_curve, per_question_change  # noqa: E402


def test_mean_ci_is_the_bootstrap_of_paired_test_against_zero():
    rng = np.random.default_rng(4)
    scores = rng.random(50)
    ci, paired = mean_ci(scores), paired_test(scores, np.zeros(50))
    assert ci.mean == pytest.approx(scores.mean())
    assert (ci.low, ci.high) == pytest.approx((paired.ci_low, paired.ci_high))  # one resampling, one home
    assert ci.low < ci.mean < ci.high and "CI" in str(ci)
    with pytest.raises(ValueError, match="non-empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([0.5, float("nan")])


def test_quality_with_ci_brackets_each_mean():
    runs = {"a": pd.DataFrame({"recall@5": [1.0, 0.0, 1.0], "ndcg@10": [0.5, 0.2, 0.9]}),
            "b": pd.DataFrame({"recall@5": [1.0, 1.0, 1.0], "ndcg@10": [1.0, 1.0, 1.0]})}
    frame = quality_with_ci(runs)
    assert len(frame) == 4 and (frame["low"] <= frame["score"]).all() and (frame["score"] <= frame["high"]).all()
    assert frame.set_index(["run", "metric"]).loc[("b", "ndcg@10"), "high"] == 1.0


def test_per_question_change_counts_every_question():
    before = pd.Series([0.5, 1.0, 0.2, 0.7, 0.3], index=list("abcde"))
    after = pd.Series([0.7, 1.0, 0.2, 0.3, 0.0], index=list("edcba"))  # other order: matched by id
    ax = per_question_change(before, after, metric="nDCG@10")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["got worse (2)", "unchanged (1)", "improved (2)"]  # a: -0.5, b: -0.7, c: 0, d: +0.3, e: +0.4
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [-0.7, -0.5, 0.3, 0.4]  # one bar per question that changed
    assert "2 improved, 1 unchanged, 2 worse" in ax.get_title()
    with pytest.raises(ValueError, match="same questions"):
        per_question_change(before, after.drop("a"))


def test_metric_curve_starts_at_zero_and_draws_intervals():
    sweep = pd.DataFrame({"size": [64, 128], "score": [0.93, 0.91], "low": [0.9, 0.85], "high": [0.96, 0.95]})
    ax = metric_curve(sweep, "size", "score", low="low", high="high")
    assert ax.get_ylim() == (0, 1) and len(ax.containers) == 1  # error bars: one container per line
    tokens = metric_curve(pd.DataFrame({"size": [64, 128], "tokens": [300, 600]}), "size", "tokens")
    assert tokens.get_ylim()[0] == 0 and tokens.get_ylim()[1] > 600
    with pytest.raises(ValueError, match="both"):
        metric_curve(sweep, "size", "score", low="low")


def test_experiment_measures_and_rerank_all_matches_the_pipeline(local_backend, demo_index, tmp_path):
    docs = [Document("cats", "Cats purr when they are content.\n\nThey sleep most of the day."),
            Document("dogs", "Dogs bark at the postman.")]
    qrels = {"q1": {"cats": 1}, "q2": {"dogs": 1}}
    Q = local_backend.embed(["Why do cats purr?", "Who do dogs bark at?"])
    cache = EmbeddingCache(tmp_path / "e.sqlite")
    first = experiment(docs, qrels, Q, local_backend, "paragraph", cache=cache)
    again = experiment(docs, qrels, Q, local_backend, "paragraph", cache=cache)
    assert first.row["chunks"] == 3 and first.row["embedded now"] == 3 and again.row["embedded now"] == 0
    assert list(first.scores.index) == ["q1", "q2"] and first.row["recall@5"] == 1.0
    with pytest.raises(ValueError, match="question vectors"):
        experiment(docs, {"q1": {"cats": 1}}, Q, local_backend, "paragraph", cache=cache)

    questions = {"a": "What does a reranker do?", "b": "How are documents split into chunks?"}
    candidates = {q: demo_index.search(local_backend.embed([t]), k=8) for q, t in questions.items()}
    pairs = PairCache(tmp_path / "p.sqlite")
    batched = rerank_all(questions, candidates, local_backend, pairs)
    for q, text in questions.items():
        one = rerank(text, candidates[q], local_backend)
        assert [h.chunk.id for h in batched[q]] == [h.chunk.id for h in one]
        assert [h.rank for h in batched[q]] == list(range(1, 9))
        np.testing.assert_allclose([h.score for h in batched[q]], [h.score for h in one], atol=1e-5)
    assert len(pairs) == 16  # every pair kept on disk: a second run reads them back
