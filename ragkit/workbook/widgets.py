"""Widgets for the workbook: turn the pipeline's knobs and watch its results, side by side.

`compare(index, backend, questions)` shows, for one question, the embedding-only candidates next to
the same candidates reranked, with sliders for N (candidates retrieved), K (kept for the prompt) and
the relevance threshold. It calls `ragkit.pipeline.ask(..., answer=False)` once per (question, N) and
keeps the `Result`: moving K or the threshold only redraws, it never calls the backend again.

`show_result(result)` draws the same two lists for a `Result` you already have, without widgets (it
survives in a saved notebook or a static HTML export).

>>> w = compare(index, backend, ["What does a reranker do?", "Why should chunks overlap?"])  # doctest: +SKIP
>>> w        # in a notebook cell: the widget                                             # doctest: +SKIP
>>> show_result(ragkit.ask("What does a reranker do?", index, backend, answer=False))      # doctest: +SKIP

Both lists carry stable CSS classes for tests and styling: the widget is `.ragkit-compare` (a static
`show_result` is `.ragkit-static`), its controls `.ragkit-question-dropdown`, `.ragkit-question-text`,
`.ragkit-n-slider`, `.ragkit-k-slider`, `.ragkit-threshold-slider`, `.ragkit-status`; the lists
`.ragkit-dense-list` and `.ragkit-rerank-list`, each row a `tr.ragkit-row` with `data-chunk` (chunk id)
and `data-rank`; kept rows have the class `kept`, rows under the threshold `below`.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Iterable, Sequence

import ipywidgets as widgets
import numpy as np

from ..pipeline import Result, ask, keep
from .plots import DOWN, SAME, UP

if TYPE_CHECKING:
    from IPython.display import HTML

    from ..types import Backend, Hit, SearchIndex

__all__ = ["compare", "Compare", "show_result", "lists_html", "kept_ids", "movement"]

SNIPPET = 120  # characters of passage text shown per row

CSS = f"""<style>
.ragkit-compare .widget-html-content, .ragkit-static {{ line-height: 1.35; }}
.ragkit-lists {{ display: flex; flex-wrap: wrap; gap: 12px; width: 100%; }}
.ragkit-lists > * {{ flex: 1 1 360px; min-width: 0; }}
.ragkit-list h4 {{ margin: 6px 0 4px 0; font-size: 13px; line-height: 1.3; }}
.ragkit-list .ragkit-sub {{ font-weight: normal; color: #757575; font-size: 12px; }}
.ragkit-list .ragkit-scroll {{ max-height: 460px; overflow-y: auto; border-bottom: 1px solid rgba(128,128,128,.25); }}
.ragkit-list table.ragkit-table {{ width: 100%; border-collapse: collapse; table-layout: fixed; font-size: 12px;
                                  line-height: 1.3; margin: 0; }}
.ragkit-list .ragkit-table th {{ text-align: left; font-weight: 600; padding: 2px 4px; position: sticky; top: 0;
                                background: var(--jp-layout-color1, #fff); box-shadow: inset 0 -1px 0 #bdbdbd;
                                border: none; vertical-align: bottom; }}
.ragkit-list .ragkit-table td {{ text-align: left; vertical-align: top; padding: 3px 4px; border: none;
                                border-bottom: 1px solid rgba(128,128,128,.2); overflow: hidden;
                                line-height: 1.3; max-width: none; }}
.ragkit-list .ragkit-table th.num, .ragkit-list .ragkit-table td.num {{ text-align: right;
                                font-variant-numeric: tabular-nums; white-space: nowrap; }}
.ragkit-list .ragkit-table .title {{ font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }}
.ragkit-list .ragkit-table .snippet {{ color: #616161; overflow-wrap: anywhere; display: -webkit-box;
                                      -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden; }}
.ragkit-list .ragkit-table tbody tr.ragkit-row {{ background: transparent; }}
.ragkit-list .ragkit-table tbody tr.ragkit-row.kept {{ background: rgba(43,108,176,.13); }}
.ragkit-list .ragkit-table tbody tr.kept td:first-child {{ box-shadow: inset 3px 0 0 #2b6cb0; }}
.ragkit-list .ragkit-table tr.below td, .ragkit-list .ragkit-table tr.below .snippet {{ color: #a0a0a0; }}
.ragkit-list .ragkit-table td.move {{ font-weight: 700; white-space: nowrap; text-align: center; }}
.ragkit-list .ragkit-table .up {{ color: {UP}; }}
.ragkit-list .ragkit-table .down {{ color: {DOWN}; }}
.ragkit-list .ragkit-table .same {{ color: {SAME}; }}
.ragkit-key {{ font-size: 12px; color: #616161; margin: 2px 0; line-height: 1.4; }}
.ragkit-key .swatch {{ display: inline-block; width: 10px; height: 10px; vertical-align: middle;
                      background: rgba(43,108,176,.25); border-left: 3px solid #2b6cb0; margin-right: 3px; }}
</style>"""


def score_text(score: float) -> str:
    """Return a score for a table cell: 3 decimals, or 2 significant digits when it is tiny.

    >>> score_text(0.61234), score_text(0.00213), score_text(0.0)
    ('0.612', '0.0021', '0.000')
    """
    if score == 0 or abs(score) >= 0.01:
        return f"{score:.3f}"
    decimals = 1 - int(np.floor(np.log10(abs(score))))  # two significant digits
    return f"{score:.{decimals}f}"


def kept_ids(result: Result, k: int, threshold: float | None) -> list[str]:
    """Return the ids of the chunks that go to the prompt: the top `k` reranked at or above `threshold`.

    The same rule as `ragkit.pipeline.ask`, applied to a Result's reranked list, so K and the
    threshold can change without asking the backend again.

    >>> kept_ids(result, k=3, threshold=0.5)     # doctest: +SKIP
    ['05-reranking.md#0', '05-reranking.md#1']
    """
    return [h.chunk.id for h in keep(result.reranked, k, threshold)]


def movement(dense_rank: int, rerank_rank: int) -> tuple[str, str]:
    """Return the movement arrow and its CSS class: ('▲3', 'up'), ('▼2', 'down') or ('=', 'same').

    >>> movement(7, 1), movement(2, 4), movement(3, 3)
    (('▲6', 'up'), ('▼2', 'down'), ('=', 'same'))
    """
    moved = dense_rank - rerank_rank
    if moved > 0:
        return f"▲{moved}", "up"
    if moved < 0:
        return f"▼{-moved}", "down"
    return "=", "same"


def _snippet(hit: "Hit") -> tuple[str, str]:
    text = " ".join(hit.chunk.prose().split())
    short = text if len(text) <= SNIPPET else text[: SNIPPET - 1].rstrip() + "…"
    return html.escape(short), html.escape(text[:600], quote=True)


def _rows(hits: Sequence["Hit"], kept: set[str], threshold: float | None, dense_rank: dict[str, int] | None) -> str:
    out = []
    for h in hits:
        classes = ["ragkit-row"]
        if h.chunk.id in kept:
            classes.append("kept")
        if dense_rank is not None and threshold is not None and h.score < threshold:
            classes.append("below")
        short, full = _snippet(h)
        cells = [f'<td class="num">{h.rank}</td>']
        if dense_rank is not None:
            arrow, cls = movement(dense_rank.get(h.chunk.id, h.rank), h.rank)
            cells.append(f'<td class="move {cls}">{arrow}</td>')
        cells += [f'<td class="num">{score_text(h.score)}</td>',
                  f'<td class="passage" title="{full}"><div class="title">{html.escape(h.chunk.label)}'
                  f' <span class="ragkit-sub">{html.escape(h.chunk.id)}</span></div>'
                  f'<div class="snippet">{short}</div></td>']
        out.append(f'<tr class="{" ".join(classes)}" data-chunk="{html.escape(h.chunk.id, quote=True)}" '
                   f'data-rank="{h.rank}">{"".join(cells)}</tr>')
    return "".join(out)


def lists_html(result: Result, kept: Iterable[str] | None = None, threshold: float | None = None) -> tuple[str, str]:
    """Return two HTML tables, (embedding only, reranked), for a Result's candidates.

    `kept` (chunk ids highlighted as sent to the prompt) defaults to `result.kept`; `threshold`
    (rows scoring under it are greyed in the reranked list) to `result.threshold`.

    >>> dense, reranked = lists_html(result)                 # doctest: +SKIP
    >>> 'class="ragkit-dense-list' in dense                  # doctest: +SKIP
    True
    """
    kept_set = {h.chunk.id for h in result.kept} if kept is None else set(kept)
    threshold = result.threshold if threshold is None else threshold
    dense_rank = {h.chunk.id: h.rank for h in result.retrieved}
    q = html.escape(result.question, quote=True)
    cols_dense = ('<colgroup><col style="width:2.2em"><col style="width:4.4em"><col></colgroup>'
                  '<thead><tr><th class="num">#</th><th class="num">cosine</th><th>passage</th></tr></thead>')
    cols_rerank = ('<colgroup><col style="width:2.2em"><col style="width:3.4em"><col style="width:4.4em"><col>'
                   '</colgroup><thead><tr><th class="num">#</th><th>move</th><th class="num">score</th>'
                   '<th>passage</th></tr></thead>')
    t = "none" if threshold is None else f"{threshold:.3g}"
    dense = (f'<div class="ragkit-list ragkit-dense-list" data-question="{q}" data-n="{len(result.retrieved)}">'
             f'<h4>Embedding only <span class="ragkit-sub">top {len(result.retrieved)} by cosine similarity'
             f'</span></h4><div class="ragkit-scroll"><table class="ragkit-table">{cols_dense}'
             f'<tbody>{_rows(result.retrieved, kept_set, None, None)}</tbody></table></div></div>')
    rerank = (f'<div class="ragkit-list ragkit-rerank-list" data-question="{q}" data-n="{len(result.reranked)}" '
              f'data-kept="{len(kept_set)}" data-threshold="{t}">'
              f'<h4>Reranked <span class="ragkit-sub">{len(kept_set)} kept, threshold {t}</span></h4>'
              f'<div class="ragkit-scroll"><table class="ragkit-table">{cols_rerank}'
              f'<tbody>{_rows(result.reranked, kept_set, threshold, dense_rank)}</tbody></table></div></div>')
    return dense, rerank


KEY = ('<div class="ragkit-key"><span class="swatch"></span>kept for the prompt (top K at or above the '
       'threshold) &nbsp;·&nbsp; <span style="color:#a0a0a0">grey: under the threshold</span> &nbsp;·&nbsp; '
       f'move vs embedding rank: <span style="color:{UP}">▲ up</span> <span style="color:{DOWN}">▼ down</span> '
       f'<span style="color:{SAME}">= same</span></div>')


def show_result(result: Result) -> "HTML":
    """Return the two lists (embedding only, reranked) of a Result as static HTML for a notebook.

    >>> show_result(ragkit.ask("What does a reranker do?", index, backend, answer=False))  # doctest: +SKIP
    """
    from IPython.display import HTML

    dense, rerank = lists_html(result)
    return HTML(f'{CSS}<div class="ragkit-static"><div class="ragkit-key"><b>'
                f'{html.escape(result.question)}</b></div>{KEY}<div class="ragkit-lists">{dense}{rerank}</div></div>')


class Compare(widgets.VBox):
    """The compare widget: a VBox whose parts are attributes, so code and tests can drive it.

    Controls: `choice` (Dropdown of questions), `question` (Text; the question shown), `n`, `k`,
    `threshold` (sliders; the threshold starts at `start_threshold` if one was given). Output: `dense` and `reranked` (HTML lists), `status` (HTML).
    `results` maps (question, N) to the `Result` of `ask(..., answer=False)` (or one passed in).
    """

    def __init__(self, index: "SearchIndex", backend: "Backend", questions: Sequence[str] | None = None,
                 *, n: int = 20, k: int = 5, threshold: float | None = None, results: Iterable[Result] = ()):
        self.index, self.backend = index, backend
        self.start_threshold = threshold  # where the threshold slider starts; None: the reranker's own
        self.results: dict[tuple[str, int], Result] = {}
        for r in results:  # already asked: shown as they are, never asked again
            if r.reranked is r.retrieved or len(r.reranked) != len(r.retrieved):
                raise ValueError(f"result for {r.question!r} was not reranked over all its candidates; "
                                 f"pass results of ask(..., use_rerank=True)")
            self.results[(r.question.strip(), len(r.retrieved))] = r
        questions = [q for q in (questions or []) if q.strip()]
        self.choice = widgets.Dropdown(options=questions, value=questions[0] if questions else None,
                                       description="Question", layout=widgets.Layout(flex="1 1 45%", min_width="260px"),
                                       style={"description_width": "70px"})
        self.question = widgets.Text(value=questions[0] if questions else "", continuous_update=False,
                                     placeholder="or type your own question and press Enter",
                                     description="or type", layout=widgets.Layout(flex="1 1 45%", min_width="260px"),
                                     style={"description_width": "60px"})
        slider = dict(continuous_update=False, layout=widgets.Layout(flex="1 1 30%", min_width="220px"),
                      style={"description_width": "95px"})
        self.n = widgets.IntSlider(value=min(max(n, 5), 50), min=5, max=50, step=1, description="N retrieved",
                                   tooltip="candidates the index returns (and the reranker scores)", **slider)
        self.k = widgets.IntSlider(value=min(max(k, 1), 10), min=1, max=10, step=1, description="K kept",
                                   tooltip="at most this many reranked chunks go to the prompt", **slider)
        self.threshold = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.01, readout_format=".3f",
                                             description="threshold",
                                             tooltip="reranked chunks scoring under this are dropped", **slider)
        self.status = widgets.HTML(layout=widgets.Layout(margin="0 0 0 4px"))
        self.dense = widgets.HTML(layout=widgets.Layout(flex="1 1 380px", min_width="0", margin="0 12px 0 0"))
        self.reranked = widgets.HTML(layout=widgets.Layout(flex="1 1 380px", min_width="0"))
        for w, name in [(self.choice, "question-dropdown"), (self.question, "question-text"), (self.n, "n-slider"),
                        (self.k, "k-slider"), (self.threshold, "threshold-slider"), (self.status, "status"),
                        (self.dense, "dense"), (self.reranked, "rerank")]:
            w.add_class(f"ragkit-{name}")
        self._threshold_set = False  # becomes True once set to the reranker's recommended value
        rows = [widgets.HBox([self.choice, self.question] if questions else [self.question],
                             layout=widgets.Layout(flex_flow="row wrap", width="100%")),
                widgets.HBox([self.n, self.k, self.threshold], layout=widgets.Layout(flex_flow="row wrap", width="100%")),
                self.status,
                widgets.HBox([self.dense, self.reranked],
                             layout=widgets.Layout(flex_flow="row wrap", width="100%"))]
        super().__init__([widgets.HTML(CSS), *rows], layout=widgets.Layout(width="100%"))
        self.add_class("ragkit-compare")
        self.choice.observe(self._on_choice, "value")
        self.question.observe(lambda _: self.refresh(), "value")
        self.n.observe(lambda _: self.refresh(), "value")
        self.k.observe(lambda _: self.render(), "value")
        self.threshold.observe(lambda _: self.render(), "value")
        self.refresh()

    def _on_choice(self, change: dict) -> None:
        if change["new"]:
            self.question.value = change["new"]  # the text box holds the question shown; it refreshes

    @property
    def result(self) -> Result | None:
        """The Result shown now (None before the first question)."""
        return self.results.get((self.question.value.strip(), self.n.value))

    def refresh(self) -> None:
        """Show the current question at the current N: from the cache, else one `ask(..., answer=False)`."""
        question, n = self.question.value.strip(), self.n.value
        if not question:
            self.status.value = '<span class="ragkit-key">Pick or type a question.</span>'
            self.dense.value = self.reranked.value = ""
            return
        key = (question, n)
        fresh = key not in self.results
        if fresh:
            try:
                self.results[key] = ask(question, self.index, self.backend, k_retrieve=n,
                                        k_keep=min(self.k.value, n), answer=False)
            except Exception as exc:  # show it where the learner is looking, not as a traceback
                self.status.value = (f'<span class="ragkit-key" style="color:{DOWN}">'
                                     f'{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>')
                return
        if fresh or not self._threshold_set:
            self._fit_threshold(self.results[key])
        self.render(fresh=fresh)

    def _fit_threshold(self, result: Result) -> None:
        """Stretch the threshold slider over every reranker score seen so far (and its starting value)."""
        scores = [h.score for r in self.results.values() for h in r.reranked]
        recommended = result.threshold if self.start_threshold is None else self.start_threshold
        lo, hi = min(scores), max(scores)
        if recommended is not None:
            lo, hi = min(lo, recommended), max(hi, recommended)
        if hi - lo < 1e-6:
            lo, hi = lo - 0.05, hi + 0.05
        step = float(f"{(hi - lo) / 200:.2g}")
        lo, hi = step * (lo // step), step * -(-hi // step)  # round outwards to whole steps
        s = self.threshold
        value = s.value if self._threshold_set else (recommended if recommended is not None else lo)
        with s.hold_trait_notifications():
            if lo > s.max:
                s.max = hi
                s.min = lo
            else:
                s.min = lo
                s.max = hi
            s.step = step
            s.value = min(max(value, lo), hi)
        self._threshold_set = True

    def render(self, fresh: bool = False) -> None:
        """Redraw both lists from the cached Result with the current K and threshold (no backend call)."""
        result = self.result
        if result is None:
            return
        dense, rerank = lists_html(result, kept_ids(result, self.k.value, self.threshold.value),
                                   self.threshold.value)
        self.dense.value, self.reranked.value = dense, rerank
        t = result.timings
        ms = " · ".join(f"{stage} {1000 * t[stage]:.0f} ms" for stage in ("retrieve", "rerank") if stage in t)
        source = "asked now" if fresh else "from cache: moving K or the threshold asks nothing"
        start = ("" if self.start_threshold is None else f" · threshold started at {self.start_threshold:.3g} "
                 f"(the reranker's own: {score_text(self.backend.rerank_threshold)})")
        self.status.value = (f'<div class="ragkit-key">reranker <code>{html.escape(self.backend.rerank_model)}</code>'
                             f' · N={len(result.retrieved)}: {ms} ({source}){start}</div>{KEY}')


def compare(index: "SearchIndex", backend: "Backend", questions: list[str] | None = None, *,
            n: int = 20, k: int = 5, threshold: float | None = None, results: Iterable[Result] = ()) -> Compare:
    """Return a widget comparing embedding-only and reranked candidates for a question.

    Pick a question from `questions` (or type one), then move N (candidates retrieved, 5-50),
    K (kept, 1-10) and the relevance threshold (its range follows the reranker's scores; it starts at
    `threshold`, e.g. one calibrated on your questions, else at the reranker's recommended value). Changing the question or N runs `ask(..., answer=False)` once
    and caches it; K and the threshold only redraw. `results` you already have from `ask(...)` seed
    the cache (keyed by question and their number of candidates), so they are not asked again.

    >>> compare(index, backend, ["What does a reranker do?", "When is RAG the wrong tool?"])  # doctest: +SKIP
    """
    return Compare(index, backend, questions, n=n, k=k, threshold=threshold, results=results)
