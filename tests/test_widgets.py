"""Plots and the compare widget, driven from Python: what they draw, and what they (do not) recompute."""
from __future__ import annotations

import re
from collections import Counter

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ragkit.workbook import plots  # noqa: E402
from ragkit.types import Chunk  # noqa: E402
from ragkit.types import Hit  # noqa: E402
from ragkit.pipeline import Result  # noqa: E402
from ragkit.workbook.widgets import compare, kept_ids, lists_html, movement, show_result  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def chunk(i: int) -> Chunk:
    return Chunk(f"doc.md#{i}", "doc.md", "Doc", f"passage number {i}", i, 0, 1, section=f"Doc > Section {i}")


def make_result(dense_order: list[int], rerank_order: list[int], rerank_scores: list[float], k: int = 3,
                threshold: float | None = 0.5, question: str = "q?") -> Result:
    """A Result by hand: chunk ids in embedding order and in reranked order, with the pipeline's keep rule."""
    retrieved = [Hit(chunk(i), 0.9 - 0.05 * r, r + 1) for r, i in enumerate(dense_order)]
    reranked = [Hit(chunk(i), s, r + 1) for r, (i, s) in enumerate(zip(rerank_order, rerank_scores))]
    kept = [h for h in reranked[:k] if threshold is None or h.score >= threshold]
    return Result(question, retrieved, reranked, kept, None, threshold, {"retrieve": 0.001, "rerank": 0.1})


# chunk 6 jumps from embedding rank 7 to 1; chunk 0 falls from 1 to 3; chunk 2 stays 4th
SAMPLE = make_result(dense_order=[0, 1, 2, 3, 4, 5, 6, 7], rerank_order=[6, 1, 0, 2, 3, 4, 5, 7],
                     rerank_scores=[0.95, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05])


def rows(fragment: str) -> list[str]:
    return re.findall(r'<tr class="ragkit-row[^"]*" data-chunk="([^"]+)"', fragment)


def rows_with(fragment: str, cls: str) -> list[str]:
    return [cid for classes, cid in re.findall(r'<tr class="(ragkit-row[^"]*)" data-chunk="([^"]+)"', fragment)
            if cls in classes.split()]


# --------------------------------------------------------------------------------------------------
# plots


def test_rank_movement_draws_one_coloured_line_per_chunk_and_highlights_kept():
    ax = plots.rank_movement(SAMPLE, top=5)
    shown = [0, 1, 2, 3, 4, 6]  # in the top 5 before (0-4) or after (6, 1, 0, 2, 3)
    assert len(ax.lines) == len(shown)
    by_left = {line.get_ydata()[0]: line for line in ax.lines}  # left end = embedding rank (rows within top)
    assert mcolors.to_hex(by_left[2].get_color()) == plots.SAME  # chunk 1: 2 -> 2
    assert mcolors.to_hex(by_left[1].get_color()) == plots.DOWN  # chunk 0: 1 -> 3
    assert mcolors.to_hex(by_left[5].get_color()) == plots.DOWN  # chunk 4: 5 -> 6
    up = [line for line in ax.lines if mcolors.to_hex(line.get_color()) == plots.UP]
    assert len(up) == 1 and up[0].get_ydata()[1] == 1  # only chunk 6 moved up, to rank 1
    kept = {c.chunk.id for c in SAMPLE.kept}
    assert len(kept) == 3
    thick = [line for line in ax.lines if line.get_linewidth() > 2]
    assert len(thick) == 3
    assert ax.get_title() and "q?" in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["moved up", "moved down", "same rank",
                                                                    "kept for the prompt"]
    labels = " ".join(t.get_text() for t in ax.texts)
    assert "Section 6" in labels and "▲6" in labels and "▼2" in labels


def test_rank_movement_stacks_chunks_from_below_the_top_under_it():
    ax = plots.rank_movement(SAMPLE, top=2)  # chunk 6 comes from rank 7, chunk 0 falls to 3
    assert len(ax.lines) == 3
    ys = sorted(max(line.get_ydata()) for line in ax.lines)
    assert ys[-1] <= 2 + 2  # two rows below the top 2, not rank 7
    assert any("7" in t.get_text() and "Section 6" in t.get_text() for t in ax.texts)  # labelled with the real rank
    with pytest.raises(ValueError):
        plots.rank_movement(SAMPLE, top=0)


def test_score_distributions_two_panels_with_threshold_line():
    other = make_result([3, 2, 1, 0], [0, 1, 2, 3], [0.9, 0.55, 0.3, 0.1], question="other?")
    left, right = plots.score_distributions([SAMPLE, other], {"q?": {"doc.md#6"}, "other?": {"doc.md#0"}})
    for ax in (left, right):
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert ax.get_legend() is not None
    assert "cosine" in left.get_xlabel() and "reranker" in right.get_xlabel()
    vertical = [line for line in right.lines if list(line.get_xdata()) == [0.5, 0.5]]
    assert len(vertical) == 1 and not left.lines
    texts = [t.get_text() for t in right.get_legend().get_texts()]
    assert any(t.startswith("threshold 0.5") for t in texts)
    assert "labelled relevant (2)" in texts and "not labelled relevant (10)" in texts
    heights = sum(p.get_height() for p in right.patches)
    assert heights == len(SAMPLE.reranked) + len(other.reranked)


def green_scores(ax) -> list[float]:
    """The bin centres of the stacked 'labelled relevant' bars, one per candidate counted in them."""
    return sorted(p.get_x() + p.get_width() / 2 for p in ax.patches
                  if mcolors.to_hex(p.get_facecolor()) == plots.UP for _ in range(int(round(p.get_height()))))


def test_score_distributions_colours_come_from_the_labels_not_from_what_was_kept():
    # chunk 6 is kept (0.95, rank 1) but labelled irrelevant; chunk 7 is labelled relevant and dropped (0.05)
    labels = {"q?": {"doc.md#7"}}
    assert "doc.md#6" in {h.chunk.id for h in SAMPLE.kept} and "doc.md#7" not in {h.chunk.id for h in SAMPLE.kept}
    _, right = plots.score_distributions([SAMPLE], labels, bins=10)
    green = green_scores(right)
    assert len(green) == 1 and green[0] < 0.2  # the one green candidate is the low-scoring labelled one
    texts = [t.get_text() for t in right.get_legend().get_texts()]
    assert "labelled relevant (1)" in texts and "not labelled relevant (7)" in texts
    assert not any("kept" in t for t in texts)
    # a question without labels (unanswerable) has no relevant candidates; the same result, other labels, other colours
    _, none = plots.score_distributions([SAMPLE], {}, bins=10)
    assert not green_scores(none)
    _, top = plots.score_distributions([SAMPLE], {"q?": {"doc.md#6"}}, bins=10)
    assert len(green_scores(top)) == 1 and green_scores(top)[0] > 0.8


def test_score_distributions_draws_named_thresholds():
    _, right = plots.score_distributions([SAMPLE], {}, thresholds={"ragkit default 0.16": 0.16, "fitted here 0.042": 0.042})
    xs = [line.get_xdata()[0] for line in right.lines]
    assert xs == [0.16, 0.042] and len({line.get_linestyle() for line in right.lines}) == 2
    texts = [t.get_text() for t in right.get_legend().get_texts()]
    assert texts[-2:] == ["ragkit default 0.16", "fitted here 0.042"]


def test_score_distributions_without_threshold_draws_no_line():
    left, right = plots.score_distributions([make_result([0, 1], [1, 0], [0.7, 0.2], k=1, threshold=None)], {})
    assert not right.lines


def test_score_distributions_when_scores_crowd_near_zero():
    strict = make_result(list(range(10)), list(range(10)), [0.3] + [0.001] * 9, k=5, threshold=0.9)
    left, right = plots.score_distributions([strict], {"q?": {"doc.md#0"}})
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["not labelled relevant (9)",
                                                                      "labelled relevant (1)", "threshold 0.9"]
    assert right.get_yscale() == "log" and "log" in right.get_ylabel()  # 9 of 10 in one bin
    assert left.get_yscale() == "linear"


def test_relevance_histogram_two_series_and_checks_shapes():
    rng = np.random.default_rng(0)
    scores = rng.random(100)
    ax = plots.relevance_histogram(scores, scores > 0.8, threshold=0.6)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("not relevant") and labels[1].startswith("relevant")
    assert labels[2] == "threshold 0.6"
    assert ax.get_title() and ax.get_xlabel() == "cosine similarity" and ax.get_ylabel() == "density"
    with pytest.raises(ValueError, match="one flag per score"):
        plots.relevance_histogram(scores, scores[:10] > 0.5)


def test_metric_curve_one_line_per_hue_sorted_by_x():
    sweep = pd.DataFrame({"size": [256, 64, 128, 64, 128, 256], "nDCG@10": [.55, .52, .58, .6, .64, .61],
                          "method": ["tokens"] * 3 + ["sentence"] * 3})
    ax = plots.metric_curve(sweep, "size", "nDCG@10", hue="method")
    assert len(ax.lines) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sentence", "tokens"]
    assert all(list(line.get_xdata()) == [64, 128, 256] for line in ax.lines)
    assert ax.get_xlabel() == "size" and ax.get_ylabel() == "nDCG@10" and ax.get_title()
    single = plots.metric_curve(sweep[sweep.method == "tokens"], "size", "nDCG@10")
    assert len(single.lines) == 1 and single.get_legend() is None
    with pytest.raises(KeyError, match="no column 'recall'"):
        plots.metric_curve(sweep, "size", "recall")


def test_plots_draw_into_a_given_axes():
    fig, axes = plt.subplots(1, 3)
    assert plots.rank_movement(SAMPLE, ax=axes[0]) is axes[0]
    assert plots.score_distributions([SAMPLE], {}, axes=axes[1:]) == (axes[1], axes[2])
    assert fig._suptitle is None  # never retitles a figure the caller laid out


# --------------------------------------------------------------------------------------------------
# HTML lists


def test_lists_html_rows_in_pipeline_order_with_movement_kept_and_below():
    dense, rerank = lists_html(SAMPLE)
    assert 'class="ragkit-list ragkit-dense-list' in dense and 'class="ragkit-list ragkit-rerank-list' in rerank
    assert rows(dense) == [h.chunk.id for h in SAMPLE.retrieved]
    assert rows(rerank) == [h.chunk.id for h in SAMPLE.reranked]
    assert rows_with(rerank, "kept") == [h.chunk.id for h in SAMPLE.kept] == ["doc.md#6", "doc.md#1", "doc.md#0"]
    assert rows_with(rerank, "below") == [h.chunk.id for h in SAMPLE.reranked if h.score < 0.5]
    assert '<td class="move up">▲6</td>' in rerank and '<td class="move down">▼2</td>' in rerank
    assert movement(3, 3) == ("=", "same")
    # K and threshold chosen later: same rule as the pipeline
    assert kept_ids(SAMPLE, 2, 0.9) == ["doc.md#6"]
    assert rows_with(lists_html(SAMPLE, kept_ids(SAMPLE, 5, 0.0), 0.0)[1], "kept") == rows(rerank)[:5]


def test_lists_html_escapes_text():
    evil = Chunk("x#0", "x", "<b>T</b>", "a <script>alert(1)</script> & b", 0, 0, 1)
    result = Result('<i>"q"</i>', [Hit(evil, 0.5, 1)], [Hit(evil, 0.9, 1)], [Hit(evil, 0.9, 1)], None, None)
    dense, rerank = lists_html(result)
    for fragment in (dense, rerank):
        assert "<script>" not in fragment and "<b>T</b>" not in fragment and '<i>"q"</i>' not in fragment
        assert "&lt;script&gt;" in fragment


def test_show_result_is_static_html_with_both_lists():
    shown = show_result(SAMPLE)
    assert "ragkit-dense-list" in shown.data and "ragkit-rerank-list" in shown.data
    assert rows(shown.data) == [h.chunk.id for h in SAMPLE.retrieved] + [h.chunk.id for h in SAMPLE.reranked]


# --------------------------------------------------------------------------------------------------
# the widget, on the real local backend, counting what reaches it


class Counting:
    """The real backend, with a count of embed and rerank calls."""

    def __init__(self, inner):
        self.inner, self.calls = inner, Counter()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed(self, texts):
        self.calls["embed"] += 1
        return self.inner.embed(texts)

    def rerank(self, query, documents, top_n=None):
        self.calls["rerank"] += 1
        return self.inner.rerank(query, documents, top_n)


QUESTIONS = ["What does a reranker do?", "Where should I store my API key?"]


@pytest.fixture
def widget(local_backend, demo_index):
    backend = Counting(local_backend)
    return compare(demo_index, backend, QUESTIONS, n=10, k=3), backend


def test_widget_shows_the_pipeline_result_in_order(widget):
    w, backend = widget
    assert backend.calls == {"embed": 1, "rerank": 1}
    result = w.results[(QUESTIONS[0], 10)]
    assert w.result is result and len(result.retrieved) == 10
    assert rows(w.dense.value) == [h.chunk.id for h in result.retrieved]
    assert rows(w.reranked.value) == [h.chunk.id for h in result.reranked]
    assert rows_with(w.reranked.value, "kept") == kept_ids(result, 3, w.threshold.value)
    # the threshold slider spans the reranker's scores and starts at its recommended value
    scores = [h.score for h in result.reranked]
    assert w.threshold.min <= min(scores) and w.threshold.max >= max(scores)
    if result.threshold is not None:
        assert w.threshold.value == pytest.approx(result.threshold, abs=w.threshold.step)
    assert backend.rerank_model in w.status.value


def test_moving_k_or_threshold_never_calls_the_backend(widget):
    w, backend = widget
    before = w.reranked.value
    w.k.value = 1
    assert rows_with(w.reranked.value, "kept") == kept_ids(w.result, 1, w.threshold.value)
    w.threshold.value = w.threshold.min
    assert rows_with(w.reranked.value, "kept") == rows(w.reranked.value)[:1]
    assert not rows_with(w.reranked.value, "below")
    w.threshold.value = w.threshold.max
    assert rows_with(w.reranked.value, "below") == [h.chunk.id for h in w.result.reranked
                                                   if h.score < w.threshold.value]
    assert w.reranked.value != before
    assert backend.calls == {"embed": 1, "rerank": 1}
    assert "from cache" in w.status.value


def test_changing_n_or_question_calls_the_backend_once_each(widget):
    w, backend = widget
    w.n.value = 15
    assert backend.calls == {"embed": 2, "rerank": 2}
    assert len(rows(w.dense.value)) == 15 and len(rows(w.reranked.value)) == 15
    w.choice.value = QUESTIONS[1]
    assert w.question.value == QUESTIONS[1]
    assert backend.calls == {"embed": 3, "rerank": 3}
    assert rows(w.reranked.value) == [h.chunk.id for h in w.results[(QUESTIONS[1], 15)].reranked]
    w.question.value = "  " + QUESTIONS[0] + " "  # typed, with spaces: (q0, 15) was asked already
    w.n.value = 10  # and (q0, 10) too
    assert backend.calls == {"embed": 3, "rerank": 3}
    assert rows(w.reranked.value) == [h.chunk.id for h in w.results[(QUESTIONS[0], 10)].reranked]
    w.question.value = "Why should chunks overlap?"
    assert backend.calls == {"embed": 4, "rerank": 4}
    assert set(w.results) == {(QUESTIONS[0], 10), (QUESTIONS[0], 15), (QUESTIONS[1], 15),
                              ("Why should chunks overlap?", 10)}


def test_results_passed_in_are_shown_without_asking_again(local_backend, demo_index):
    backend = Counting(local_backend)
    from ragkit.pipeline import ask

    asked = [ask(q, demo_index, backend, k_retrieve=12, answer=False) for q in QUESTIONS]
    backend.calls.clear()
    w = compare(demo_index, backend, QUESTIONS, n=12, results=asked)
    w.choice.value = QUESTIONS[1]
    assert not backend.calls
    assert w.result is asked[1] and rows(w.reranked.value) == [h.chunk.id for h in asked[1].reranked]
    scores = [h.score for r in asked for h in r.reranked]
    assert w.threshold.min <= min(scores) and w.threshold.max >= max(scores)
    plain = ask(QUESTIONS[0], demo_index, backend, k_retrieve=5, k_keep=2, use_rerank=False, answer=False)
    with pytest.raises(ValueError, match="not reranked"):
        compare(demo_index, backend, QUESTIONS, results=[plain])


def test_widget_reports_a_bad_question_instead_of_raising(widget):
    w, backend = widget
    w.question.value = "   "
    assert "Pick or type a question" in w.status.value and w.reranked.value == ""
    assert backend.calls["rerank"] == 1


def test_widget_opens_at_a_threshold_passed_in(local_backend, demo_index):
    backend = Counting(local_backend)
    from ragkit.pipeline import ask

    asked = [ask(q, demo_index, backend, k_retrieve=10, answer=False) for q in QUESTIONS]
    below_default = asked[0].reranked[1].score  # the second candidate: under the reranker's own threshold
    assert below_default < local_backend.rerank_threshold
    w = compare(demo_index, backend, QUESTIONS, n=10, k=3, threshold=below_default, results=asked)
    assert w.threshold.value == pytest.approx(below_default, abs=w.threshold.step)
    assert w.threshold.min <= below_default <= w.threshold.max
    kept = rows_with(w.reranked.value, "kept")
    assert kept == kept_ids(asked[0], 3, w.threshold.value) and len(kept) >= 2  # more than the default keeps
    assert len(kept_ids(asked[0], 3, local_backend.rerank_threshold)) < len(kept)
    assert f"threshold started at {below_default:.3g}" in w.status.value
    w.choice.value = QUESTIONS[1]  # another question keeps the slider where it is
    assert w.threshold.value == pytest.approx(below_default, abs=w.threshold.step)
