"""Plots for the workbook: pictures of what the pipeline already returned, nothing recomputed.

Each function takes data ragkit gives you (a `Result`, a list of them, a DataFrame of a sweep, an
array of scores) and an optional matplotlib `ax`, draws one picture that answers one question, and
returns the Axes (a pair of Axes for `score_distributions`, whose two scores live on different scales).

- `score_distributions(results, relevant)`: do the labelled relevant candidates score apart from the
  rest, before and after reranking, and where does the relevance threshold cut?
- `rank_movement(result)`: which chunks did the reranker move up or down, and which reached the prompt?
- `relevance_histogram(scores, relevant_mask)`: do relevant chunks score higher than the rest?
- `metric_curve(frame, x, y, hue)`: how does a metric change as one knob turns (and how sure is it)?
- `per_question_change(before, after)`: on how many questions did a change help, hurt, do nothing?
- `technique_effects(table)`: which techniques moved a metric, by how much, and how sure is it, per set?

>>> from ragkit.workbook.plots import rank_movement
>>> ax = rank_movement(ragkit.ask("What does a reranker do?", index, backend, answer=False))  # doctest: +SKIP
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Collection, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # matplotlib and pandas load only when a plot is drawn
    import pandas as pd
    from matplotlib.axes import Axes

    from ..pipeline import Result
    from ..types import Hit

__all__ = ["score_distributions", "rank_movement", "relevance_histogram", "metric_curve", "per_question_change",
           "technique_effects",
           "short_title", "UP", "DOWN", "SAME"]

UP, DOWN, SAME = "#1a9850", "#d73027", "#9e9e9e"  # moved up / moved down / stayed (green, red, grey)
KEPT, DROPPED = "#2b6cb0", "#b0bec5"  # chunks that reached the prompt / the rest
WIDTH = 7.5  # inches: the width of a notebook cell at the default zoom


def _axes(ax: "Axes | None", height: float) -> "Axes":
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(WIDTH, height), layout="constrained")
    return ax


def short_title(hit: "Hit", limit: int = 32) -> str:
    """Return a short label for a chunk: its section's last heading, else its document title.

    >>> from ragkit.types import Chunk, Hit
    >>> short_title(Hit(Chunk("r#3", "r", "Reranking", "...", 3, 0, 3, section="Reranking > Cost"), 0.5, 1))
    'Reranking > Cost'
    """
    label = hit.chunk.label
    if len(label) > limit:
        label = label.split(" > ")[-1]  # the deepest heading says most about the passage
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _relevance_mask(results: "Sequence[Result]", relevant: "Mapping[str, Collection[str]]",
                    stage: str) -> np.ndarray:
    """Return one flag per candidate of `stage`, pooled over `results`: is it labelled relevant to its question?"""
    return np.array([h.chunk.id in relevant.get(r.question, ()) for r in results for h in getattr(r, stage)],
                    dtype=bool)


def score_distributions(results: "Sequence[Result]", relevant: "Mapping[str, Collection[str]]",
                        axes: "Sequence[Axes] | None" = None, bins: int = 20,
                        thresholds: "Mapping[str, float] | None" = None) -> "tuple[Axes, Axes]":
    """Return two Axes: histograms of candidate scores before reranking (cosine) and after (reranker).

    Scores are pooled over all `results` (one per question). Each panel stacks the candidates labelled
    relevant to their question (`relevant` maps a question to its relevant chunk ids; a question not
    in it, such as an unanswerable one, has none) on top of the rest. The colours come from those
    labels, never from what was kept: "kept" is decided by the score itself, so colouring by it would
    only show the threshold back. The right panel draws the relevance threshold as a dashed line:
    each result's own, or the named `thresholds` ({label: value}) to compare several. Two panels,
    because cosine similarity and a reranker's score are on different scales: only the shape and the
    overlap of relevant vs the rest compare. A panel whose scores mostly fall in one bin (as a
    calibrated reranker's do: most candidates score near 0) gets a log-scale count axis, so the few
    high scorers stay visible.

    >>> results = [ask(q, index, backend, answer=False) for q in questions]    # doctest: +SKIP
    >>> left, right = score_distributions(results, {"What does BM25 reward?": {"04-vector-search.md#1"}})  # doctest: +SKIP
    """
    results = list(results)
    if not results:
        raise ValueError("no results to plot: pass a list of ragkit.ask(...) results")
    own_figure = axes is None
    if own_figure:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, 2, figsize=(WIDTH + 1.5, 3.4), layout="constrained")
    left, right = axes
    panels = [(left, "retrieved", "cosine similarity (embedding)", "Before: embedding scores"),
              (right, "reranked", "reranker score", "After: reranker scores")]
    for ax, stage, xlabel, title in panels:
        scores = np.array([h.score for r in results for h in getattr(r, stage)], dtype=float)
        is_relevant = _relevance_mask(results, relevant, stage)
        lo, hi = (scores.min(), scores.max()) if scores.size else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
        ax.hist([scores[~is_relevant], scores[is_relevant]], bins=edges, stacked=True, color=[DROPPED, UP],
                label=[f"not labelled relevant ({(~is_relevant).sum()})",
                       f"labelled relevant ({is_relevant.sum()})"])
        counts, _ = np.histogram(scores, bins=edges)
        crowded = scores.size > 0 and counts.max() > 0.6 * scores.size  # one bar would flatten the rest
        if crowded:
            ax.set_yscale("log")
        ax.set(title=title, xlabel=xlabel, ylabel="candidate chunks" + (" (log scale)" if crowded else ""))
    if thresholds is None:  # each result's own, one legend entry
        own = sorted({r.threshold for r in results if r.threshold is not None})
        lines = [(f"threshold {t:.3g}" if i == 0 else None, t, "--") for i, t in enumerate(own)]
    else:
        lines = [(label, t, ("--", ":", "-.")[i % 3]) for i, (label, t) in enumerate(thresholds.items())]
    for label, t, style in lines:
        right.axvline(t, color="black", linestyle=style, linewidth=1.2, label=label)
    n = sum(len(r.retrieved) for r in results)
    if own_figure:  # never retitle a figure the caller laid out
        left.figure.suptitle(f"Candidate scores for {len(results)} question{'s' * (len(results) != 1)} "
                             f"({n} candidates)", fontsize="medium")
    left.legend(fontsize="small")
    right.legend(fontsize="small")
    return left, right


def rank_movement(result: "Result", top: int = 10, ax: "Axes | None" = None) -> "Axes":
    """Return an Axes with a slope chart: each chunk's embedding rank (left) and reranked rank (right).

    Shows every chunk in the top `top` on either side, one line each: green if the reranker moved it
    up, red if down, grey if it stayed. Chunks kept for the prompt are drawn thick and labelled in
    bold. Rank 1 is at the top; chunks from below the top `top` are stacked in the shaded band at the
    bottom, labelled with their real rank.

    >>> ax = rank_movement(ask("What does a reranker do?", index, backend, answer=False), top=8)  # doctest: +SKIP
    >>> len(ax.lines)   # one line per chunk shown                                              # doctest: +SKIP
    10
    """
    from matplotlib.lines import Line2D

    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    before = {h.chunk.id: h for h in result.retrieved}
    after = {h.chunk.id: h for h in result.reranked}
    kept = {h.chunk.id for h in result.kept}
    shown = [cid for cid in before if cid in after and (before[cid].rank <= top or after[cid].rank <= top)]
    if not shown:
        raise ValueError("the result has no reranked candidates to plot (was it run with use_rerank=False?)")

    def rows(side: dict) -> dict[str, int]:  # rank within the top, else the next free row below it
        deep = sorted((side[c].rank, c) for c in shown if side[c].rank > top)
        return {**{c: side[c].rank for c in shown if side[c].rank <= top},
                **{c: top + 1 + i for i, (_, c) in enumerate(deep)}}

    left, right = rows(before), rows(after)
    depth = max(max(left.values()), max(right.values()))
    ax = _axes(ax, height=max(2.6, 0.3 * depth + 1.6))
    if depth > top:
        ax.axhspan(top + 0.5, depth + 0.6, color="#f0f0f0", zorder=0)
    small = dict(va="center", fontsize="small", textcoords="offset points")
    for cid in shown:
        a, b = before[cid].rank, after[cid].rank
        colour = UP if b < a else DOWN if b > a else SAME
        is_kept = cid in kept
        weight = "bold" if is_kept else "normal"
        ax.plot([0, 1], [left[cid], right[cid]], color=colour, linewidth=3.2 if is_kept else 1.4,
                alpha=1 if is_kept else 0.75, marker="o", markersize=6 if is_kept else 4,
                solid_capstyle="round", zorder=3 if is_kept else 2)
        ax.annotate(f"{short_title(before[cid])}  {a:>2}", (0, left[cid]), xytext=(-7, 0), ha="right",
                    fontweight=weight, **small)
        moved = a - b
        ax.annotate(f"{b:>2}", (1, right[cid]), xytext=(7, 0), ha="left", fontweight=weight, **small)
        ax.annotate(f"▲{moved}" if moved > 0 else f"▼{-moved}" if moved < 0 else "=", (1, right[cid]),
                    xytext=(24, 0), ha="left", color=colour, fontweight=weight, **small)
        ax.annotate(short_title(after[cid]), (1, right[cid]), xytext=(50, 0), ha="left", fontweight=weight,
                    **small)
    ax.set_xlim(-1.3, 2.3)
    ax.set_ylim(depth + 0.6, 0.4)
    ax.set_xticks([0, 1], ["embedding rank", "reranked rank"])
    ax.set_yticks([])
    ax.set_ylabel("rank (1 = best, at the top)")
    ax.set_xlabel(f"{len(shown)} chunks in the top {top} before or after reranking; {len(kept)} kept for "
                  f"the prompt (bold)" + (f"; shaded: from below the top {top}" if depth > top else ""),
                  fontsize="small")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    question = result.question if len(result.question) <= 70 else result.question[:69] + "…"
    ax.set_title(f"How the reranker reordered the candidates: “{question}”", fontsize="medium", pad=24)
    handles = [Line2D([], [], color=UP, lw=2, label="moved up"), Line2D([], [], color=DOWN, lw=2, label="moved down"),
               Line2D([], [], color=SAME, lw=2, label="same rank"),
               Line2D([], [], color="black", lw=3.2, marker="o", label="kept for the prompt")]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize="small",
              frameon=False, borderaxespad=0.2)
    return ax


def relevance_histogram(scores: Sequence[float] | np.ndarray, relevant_mask: Sequence[bool] | np.ndarray,
                        ax: "Axes | None" = None, bins: int = 30, density: bool = True,
                        threshold: float | None = None, xlabel: str = "cosine similarity",
                        labels: tuple[str, str] = ("not relevant", "relevant"),
                        title: str = "Scores of relevant vs non-relevant chunks") -> "Axes":
    """Return an Axes with the score distribution of relevant vs non-relevant items, overlaid.

    `scores[i]` is one similarity and `relevant_mask[i]` whether it belongs to something labelled
    relevant: a (question, chunk) pair, or, as chapter 2 draws it, a question's best chunk of a
    relevant topic next to its best chunk of any other topic. `labels` names the two groups (not
    relevant first). With `density=True` (default) each histogram has area 1, so a small group stays
    visible next to a big one. The more the two humps overlap, the more often an irrelevant item
    outranks a relevant one.

    >>> ax = relevance_histogram([0.8, 0.7, 0.2, 0.3, 0.1], [True, True, False, False, False])
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['not relevant (n=3)', 'relevant (n=2)']
    >>> ax = relevance_histogram([0.8, 0.6], [True, False], labels=("best other", "best relevant"), title="t")
    >>> ax.get_title(), ax.get_legend().get_texts()[0].get_text()
    ('t (dotted: medians)', 'best other (n=1)')
    """
    scores = np.asarray(scores, dtype=float)
    mask = np.asarray(relevant_mask, dtype=bool)
    if scores.shape != mask.shape:
        raise ValueError(f"scores has shape {scores.shape} but relevant_mask {mask.shape}: one flag per score")
    ax = _axes(ax, height=3.4)
    lo, hi = (scores.min(), scores.max()) if scores.size else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
    for part, colour, label in ((~mask, DROPPED, labels[0]), (mask, UP, labels[1])):
        values = scores[part]
        if values.size:
            ax.hist(values, bins=edges, density=density, histtype="stepfilled", alpha=0.45, color=colour,
                    edgecolor=colour, linewidth=1.5, label=f"{label} (n={values.size})")
            ax.axvline(float(np.median(values)), color=colour, linestyle=":", linewidth=1.5)
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1.2, label=f"threshold {threshold:.3g}")
    ax.set(title=f"{title} (dotted: medians)", xlabel=xlabel, ylabel="density" if density else "count")
    ax.legend(fontsize="small")
    return ax


def metric_curve(frame: "pd.DataFrame", x: str, y: str, hue: str | None = None,
                 ax: "Axes | None" = None, low: str | None = None, high: str | None = None) -> "Axes":
    """Return an Axes with `y` against `x` from a sweep's DataFrame, one line per `hue` value.

    `low` and `high` name columns holding each point's confidence interval (e.g. from
    `eval.paired.mean_ci`), drawn as error bars. The y-axis starts at 0 whenever every value is
    at least 0 (a share, a count, a size), and a metric within 0..1 (recall, nDCG) gets its whole
    scale, 0 to 1: a gap is drawn as big as it is, not as big as a cropped axis makes it look.

    >>> import pandas as pd
    >>> sweep = pd.DataFrame({"chunk size": [64, 128, 256] * 2, "nDCG@10": [.52, .58, .55, .6, .64, .61],
    ...                       "method": ["tokens"] * 3 + ["sentence"] * 3})
    >>> ax = metric_curve(sweep, "chunk size", "nDCG@10", hue="method")
    >>> len(ax.lines), [float(v) for v in ax.get_ylim()]    # nDCG@10 on its whole scale
    (2, [0.0, 1.0])
    >>> sweep["low"], sweep["high"] = sweep["nDCG@10"] - 0.1, sweep["nDCG@10"] + 0.1
    >>> len(metric_curve(sweep, "chunk size", "nDCG@10", hue="method", low="low", high="high").containers)
    2
    """
    if (low is None) != (high is None):
        raise ValueError("give both low and high (the interval's two ends), or neither")
    missing = [c for c in (x, y, hue, low, high) if c is not None and c not in frame.columns]
    if missing:
        raise KeyError(f"no column {missing[0]!r} in the frame; it has {list(frame.columns)}")
    ax = _axes(ax, height=3.4)
    groups = [(None, frame)] if hue is None else list(frame.groupby(hue, sort=True))
    for name, part in groups:
        part = part.sort_values(x)
        label = None if hue is None else f"{name}"
        if low is None:
            ax.plot(part[x], part[y], marker="o", label=label)
        else:
            errors = np.vstack([part[y] - part[low], part[high] - part[y]]).clip(min=0)
            ax.errorbar(part[x], part[y], yerr=errors, marker="o", capsize=3, label=label)
    values = frame[[c for c in (y, low, high) if c is not None]].to_numpy(dtype=float)
    if values.size and values.min() >= 0:
        ax.set_ylim(0, 1 if values.max() <= 1 else None)
    ax.set(title=f"{y} by {x}" + (f" and {hue}" if hue else ""), xlabel=x, ylabel=y)
    ax.grid(alpha=0.3)
    if hue is not None:
        ax.legend(title=hue, fontsize="small")
    return ax


def per_question_change(before: "pd.Series | Sequence[float]", after: "pd.Series | Sequence[float]",
                        ax: "Axes | None" = None, names: tuple[str, str] = ("before", "after"),
                        metric: str = "score", tolerance: float = 1e-9) -> "Axes":
    """Return an Axes with each question's change `after - before`, sorted: one bar per question.

    Questions that got worse are red bars on the left, those that improved green bars on the right,
    and the unchanged ones a grey band on the zero line between them, as wide as their number, so
    none is hidden (as they are on a before/after scatter, piled up on its diagonal). The legend
    and the title count each group. Two pandas Series are matched by question id.

    >>> ax = per_question_change([0.5, 1.0, 0.2, 0.7], [1.0, 1.0, 0.0, 0.7], names=("dense", "reranked"))
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['got worse (1)', 'unchanged (2)', 'improved (1)']
    """
    import pandas as pd

    if isinstance(before, pd.Series) and isinstance(after, pd.Series):
        if set(before.index) != set(after.index):
            raise ValueError("before and after must score the same questions")
        after = after.reindex(before.index)
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not a.size:
        raise ValueError(f"before and after must be two 1-d series of one length, got {a.shape} and {b.shape}")
    change = np.sort(b - a, kind="stable")
    x = np.arange(change.size)
    worse, better = change < -tolerance, change > tolerance
    same = ~(worse | better)
    ax = _axes(ax, height=3.4)
    ax.bar(x[worse], change[worse], width=1.0, color=DOWN, label=f"got worse ({worse.sum()})")
    if same.any():
        ax.hlines(0, x[same][0] - 0.5, x[same][-1] + 0.5, color=SAME, linewidth=6,
                  label=f"unchanged ({same.sum()})")
        ax.annotate(f"{same.sum()} unchanged", (x[same].mean(), 0), xytext=(0, 8), textcoords="offset points",
                    ha="center", fontsize="small", color="#616161")
    ax.bar(x[better], change[better], width=1.0, color=UP, label=f"improved ({better.sum()})")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlim(-0.5, change.size - 0.5)
    ax.set(title=f"{metric} per question, {names[1]} vs {names[0]}: {better.sum()} improved, "
                 f"{same.sum()} unchanged, {worse.sum()} worse",
           xlabel=f"{change.size} questions, sorted by change", ylabel=f"change in {metric}\n({names[1]} − {names[0]})")
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: ("got worse", "unchanged", "improved").index(
        labels[i].split(" (")[0]))  # left to right, as drawn
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left", fontsize="small")
    return ax


def technique_effects(table: "pd.DataFrame", axes: "Sequence[Axes] | None" = None,
                      metric: str = "nDCG@10") -> "Sequence[Axes]":
    """Return one Axes per set: each technique's paired difference from the base, with its 95% interval.

    `table` is `ragkit.eval.results.techniques_table(...)` (columns set, technique, difference, low,
    high). A bar whose whole interval lies right of zero helped (green), left of it hurt (red); one that
    crosses zero is grey: on these questions it cannot be told from the base. Techniques are in the
    table's order, the same on every panel; a technique a set does not run leaves its row empty.

    >>> import pandas as pd
    >>> t = pd.DataFrame({"set": ["a", "a"], "technique": ["x", "y"], "difference": [0.05, -0.01],
    ...                   "low": [0.01, -0.03], "high": [0.09, 0.01]})
    >>> [line.get_color() for line in technique_effects(t)[0].lines[0:4:2]]   # the two intervals
    ['#1a9850', '#9e9e9e']
    """
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(table["set"]))
    names = list(dict.fromkeys(table["technique"]))
    if axes is None:
        _, axes = plt.subplots(1, len(sets), figsize=(WIDTH * 1.3, 0.4 * len(names) + 1.4), sharey=True,
                               squeeze=False)
        axes = list(axes[0])
    for ax, name in zip(axes, sets):
        rows = table[table["set"] == name].set_index("technique")
        for y, technique in enumerate(names):
            if technique not in rows.index:
                continue
            r = rows.loc[technique]
            color = UP if r["low"] > 0 else DOWN if r["high"] < 0 else SAME
            ax.plot([r["low"], r["high"]], [y, y], color=color, linewidth=2.5, solid_capstyle="butt")
            ax.plot([r["difference"]], [y], "o", color=color, markersize=5)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set(title=name, xlabel=f"{metric} minus the base's")
        ax.grid(axis="x", alpha=0.3)
    return axes
