"""Choosing a relevance threshold from labelled questions (ragkit.eval.thresholds): the rule's fiddly parts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st

from ragkit.eval.thresholds import best_scores, calibrate, candidates, choose_threshold, threshold_rates
from ragkit.pipeline import Result
from ragkit.types import Chunk, Hit


def asked(question: str, *scores: float) -> Result:
    """A reranked Result by hand, best score first."""
    hits = [Hit(Chunk(f"{question}#{i}", "d", "D", "text", i, 0, 1), s, i + 1) for i, s in enumerate(scores)]
    return Result(question, hits, hits, [], None, 0.16)


def test_calibrate_reads_only_the_best_score_and_splits_the_widest_gap():
    answerable = [asked("a?", 0.5, 0.2), asked("b?", 0.078, 0.07), asked("c?", 0.3)]
    unanswerable = [asked("x?", 0.006, 0.005), asked("y?", 0.004)]
    c = calibrate(answerable, unanswerable)
    assert list(c.best["best"]) == [0.5, 0.078, 0.3, 0.006, 0.004]
    assert c.threshold == pytest.approx((0.006 + 0.078) / 2)  # the middle of the gap, not its edge
    assert c.rates.loc[c.threshold].to_dict() == {"answered": 1.0, "refused": 1.0, "balanced": 1.0}
    frame = c.to_frame()
    assert frame["chosen"].sum() == 1 and frame.index[frame["chosen"]][0] == c.threshold
    assert len(c.rates) == 4  # five distinct best scores, four cuts between them


def test_overlap_takes_the_best_balanced_accuracy_that_answers_enough():
    # answerable best scores 0.9, 0.8, 0.7, 0.6, 0.05; unanswerable 0.65, 0.01
    best = pd.DataFrame({"answerable": [True] * 5 + [False] * 2, "best": [0.9, 0.8, 0.7, 0.6, 0.05, 0.65, 0.01]})
    rates = threshold_rates(best)
    assert choose_threshold(rates, min_answered=0.5) == pytest.approx(0.675)  # refuses both, answers 3 of 5
    assert rates.loc[rates.index[3], "balanced"] == 0.8 and rates["balanced"].idxmax() == rates.index[3]
    assert choose_threshold(rates, min_answered=0.8) == pytest.approx(0.03)  # 0.675 answers too few: all 5, 1 of 2 refused


def test_several_sets_average_balanced_accuracy_and_each_must_answer_enough():
    grid = (0.1, 0.2, 0.3)
    one = threshold_rates(pd.DataFrame({"answerable": [True, True, False], "best": [0.35, 0.25, 0.15]}), grid)
    two = threshold_rates(pd.DataFrame({"answerable": [True, True, False], "best": [0.35, 0.15, 0.05]}), grid)
    assert choose_threshold(one) == 0.2 and choose_threshold(two) == 0.1
    assert choose_threshold([one, two], min_answered=1.0) == 0.1  # 0.2 answers only half of set two
    assert choose_threshold([one, two], min_answered=0.5) == 0.2  # mean balanced 0.875 beats 0.75


def test_one_kind_of_question_alone_cannot_judge_a_threshold():
    with pytest.raises(ValueError, match="answerable and unanswerable"):
        calibrate([asked("a?", 0.5)], [])
    with pytest.raises(ValueError, match="no candidates"):
        best_scores([Result("q?", [], [], [], None, 0.1)], [])


@given(st.lists(st.floats(0, 1), min_size=2, max_size=30))
def test_midpoint_candidates_give_every_distinct_cut_once(scores):
    cuts = candidates(scores)
    distinct = np.unique(scores)
    assert len(cuts) == len(distinct) - 1 and np.all(np.diff(cuts) > 0)
    passing = [int((np.asarray(scores) >= t).sum()) for t in cuts]
    assert len(set(passing)) == len(cuts)  # each cut lets a different number of scores through
