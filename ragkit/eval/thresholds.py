"""Where should the relevance threshold be? Choose it from labelled questions, and show the rates it was chosen from.

A relevance threshold has two jobs: let through the best passage of a question the documents *can*
answer, and turn away every passage of a question they cannot. What decides both is each question's
**best** reranked score: if it is under the threshold, nothing reaches the prompt.

The rule, written out by hand because it is the lesson:

1. Per question, the best reranked score (`best_scores`), and whether the question is answerable.
2. Candidate thresholds (`candidates`): the midpoints between consecutive distinct best scores. Any
   threshold between two neighbouring scores sorts the questions the same way, so the midpoints give
   every possible outcome once, each as far as it can be from the scores on either side.
3. Per candidate (`threshold_rates`): `answered`, the share of answerable questions whose best score
   passes (>= t); `refused`, the share of unanswerable ones whose best score does not (< t); and
   `balanced`, their mean (balanced accuracy: a few unanswerable questions weigh as much as many
   answerable ones).
4. The choice (`choose_threshold`): the highest balanced accuracy among the candidates that answer at
   least `min_answered` of the answerable questions (a threshold that says "not in the sources" to one
   fair question in four is no use); ties go to the lowest such threshold (it answers the most). With
   several labelled sets, balanced accuracy is averaged over them and `min_answered` holds for each.

`calibrate(answerable, unanswerable)` does all four on `ragkit.ask` results. A threshold chosen on some
questions and reported on the same questions is *fitted*, not measured: check it on questions it was
not chosen on before you trust it.

>>> best = pd.DataFrame({"answerable": [True, True, True, False, False], "best": [0.6, 0.3, 0.08, 0.01, 0.005]})
>>> choose_threshold(threshold_rates(best))
0.045
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..pipeline import Result

__all__ = ["MIN_ANSWERED", "Calibration", "best_scores", "calibrate", "candidates", "choose_threshold",
           "threshold_rates"]

MIN_ANSWERED = 0.85  # share of answerable questions a chosen threshold must let through


def best_scores(answerable: Sequence[Result], unanswerable: Sequence[Result]) -> pd.DataFrame:
    """Return one row per question (its text as the index): whether it is answerable, and its best reranked score.

    >>> from ragkit.types import Chunk, Hit
    >>> hit = Hit(Chunk("d#0", "d", "D", "text", 0, 0, 1), 0.42, 1)
    >>> best_scores([Result("q?", [hit], [hit], [hit], None, 0.1)], []).to_dict("index")
    {'q?': {'answerable': True, 'best': 0.42}}
    """
    rows = []
    for label, results in ((True, answerable), (False, unanswerable)):
        for r in results:
            if not r.reranked:
                raise ValueError(f"the result for {r.question!r} has no candidates: ask with k_retrieve >= 1")
            rows.append({"question": r.question, "answerable": label, "best": float(r.reranked[0].score)})
    return pd.DataFrame(rows, columns=["question", "answerable", "best"]).set_index("question")


def candidates(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return the midpoints between consecutive distinct scores, ascending: every way a threshold can cut them.

    >>> candidates([0.3, 0.1, 0.1, 0.0]).tolist()
    [0.05, 0.2]
    """
    values = np.unique(np.asarray(scores, dtype=float))
    return (values[:-1] + values[1:]) / 2


def threshold_rates(best: pd.DataFrame, thresholds: Sequence[float] | np.ndarray | None = None) -> pd.DataFrame:
    """Return per threshold: the share of answerable questions kept (best >= t), of unanswerable ones
    refused (best < t), and their mean, the balanced accuracy.

    `best` has a boolean `answerable` and a `best` score per question (as `best_scores` returns);
    `thresholds` defaults to `candidates(best["best"])`.

    >>> best = pd.DataFrame({"answerable": [True, True, False], "best": [0.3, 0.1, 0.05]})
    >>> threshold_rates(best, (0.08, 0.2)).round(2).to_dict("index")
    {0.08: {'answered': 1.0, 'refused': 1.0, 'balanced': 1.0}, 0.2: {'answered': 0.5, 'refused': 1.0, 'balanced': 0.75}}
    """
    answerable = best["answerable"].astype(bool)
    yes, no = best.loc[answerable, "best"], best.loc[~answerable, "best"]
    if yes.empty or no.empty:
        raise ValueError(f"need answerable and unanswerable questions, got {len(yes)} and {len(no)}: "
                         "a threshold cannot be judged on one kind alone")
    thresholds = candidates(best["best"]) if thresholds is None else thresholds
    rows = {float(t): {"answered": float((yes >= t).mean()), "refused": float((no < t).mean())} for t in thresholds}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["answered", "refused"])
    out["balanced"] = (out["answered"] + out["refused"]) / 2
    out.index.name = "threshold"
    return out


def choose_threshold(rates: pd.DataFrame | Sequence[pd.DataFrame], min_answered: float = MIN_ANSWERED) -> float:
    """Return the threshold with the best balanced accuracy among those answering at least `min_answered`.

    `rates` is one `threshold_rates` table, or several on the same thresholds (one per labelled set:
    balanced accuracy is averaged over them, and `min_answered` must hold in each). Ties go to the
    lowest threshold; if no threshold answers enough, the lowest threshold is returned.

    >>> rates = pd.DataFrame({"answered": [1.0, 0.9, 0.5], "refused": [0.0, 0.8, 1.0]}, index=[0.1, 0.2, 0.3])
    >>> rates["balanced"] = (rates["answered"] + rates["refused"]) / 2
    >>> choose_threshold(rates), choose_threshold(rates, min_answered=0.95)
    (0.2, 0.1)
    """
    tables = [rates] if isinstance(rates, pd.DataFrame) else list(rates)
    if not tables or any(t.empty for t in tables):
        raise ValueError("no thresholds to choose from")
    mean = pd.concat([t["balanced"] for t in tables], axis=1).mean(axis=1).sort_index()
    enough = pd.concat([t["answered"] >= min_answered for t in tables], axis=1).all(axis=1).reindex(mean.index)
    pool = mean[enough] if enough.any() else mean.iloc[:1]
    return float(pool[pool == pool.max()].index.min())


@dataclass(frozen=True)
class Calibration:
    """A chosen threshold, with the per-question best scores and the rates table it was chosen from."""

    threshold: float
    rates: pd.DataFrame  # threshold_rates over the candidates
    best: pd.DataFrame  # best_scores: one row per question
    min_answered: float = MIN_ANSWERED

    def to_frame(self) -> pd.DataFrame:
        """Return the rates table with a `chosen` column marking the threshold picked."""
        return self.rates.assign(chosen=self.rates.index == self.threshold)


def calibrate(answerable: Sequence[Result], unanswerable: Sequence[Result], *,
              thresholds: Sequence[float] | None = None, min_answered: float = MIN_ANSWERED) -> Calibration:
    """Return the threshold that best separates answerable from unanswerable questions, and how it was chosen.

    `answerable` and `unanswerable` are `ragkit.ask(..., answer=False)` results (the threshold they
    were asked with does not matter: only their reranked scores are read). The rule is the module's:
    midpoint candidates, best balanced accuracy among those answering at least `min_answered`.

    >>> from ragkit.types import Chunk, Hit
    >>> def asked(q, score):
    ...     hit = Hit(Chunk(q, "d", "D", "text", 0, 0, 1), score, 1)
    ...     return Result(q, [hit], [hit], [], None, 0.16)
    >>> c = calibrate([asked("a?", 0.5), asked("b?", 0.08)], [asked("c?", 0.01)])
    >>> round(c.threshold, 3), c.rates.loc[c.threshold].to_dict()
    (0.045, {'answered': 1.0, 'refused': 1.0, 'balanced': 1.0})
    """
    best = best_scores(answerable, unanswerable)
    rates = threshold_rates(best, thresholds)
    return Calibration(choose_threshold(rates, min_answered), rates, best, min_answered)
