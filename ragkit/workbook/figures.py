"""Diagrams for the chapters, drawn with matplotlib (no image files to keep in step with the code).

`pipeline_figure()` draws the four RAG steps as ragkit runs them: the documents are indexed once,
ahead of time; each question is retrieved, reranked and answered.

>>> fig = pipeline_figure()
>>> [t.get_text().split("\\n")[0] for t in fig.axes[0].texts][:4]
['your documents', 'chunks', 'index', 'question']
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PIPELINE_STEPS", "pipeline_figure"]

# (label, x, y, colour): the boxes of the diagram; the index row is done once, the question row per question.
PIPELINE_STEPS = [
    ("your documents", 0.0, 1.0, "#ddd"),
    ("chunks\n(1 · index: chunk)", 1.0, 1.0, "#cfe3f5"),
    ("index\n(1 · index: embed)", 2.0, 1.0, "#cfe3f5"),
    ("question", 0.0, 0.0, "#ddd"),
    ("top 20 candidates\n(2 · retrieve)", 1.0, 0.0, "#d5efd5"),
    ("best ≤ 5 above a threshold\n(3 · rerank)", 2.05, 0.0, "#fde6c8"),
    ("answer citing [n], checked\n(4 · generate)", 3.25, 0.0, "#f5d0d0"),
]
_ARROWS = [(0, 1), (1, 2), (3, 4), (2, 4), (4, 5), (5, 6)]


def pipeline_figure(width: float = 10.0) -> "Figure":
    """Return a figure of the pipeline: one row built once (the index), one row run per question."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, width * 0.28))
    boxes = [ax.text(x, y, label, ha="center", va="center", fontsize=9,
                     bbox={"boxstyle": "round,pad=0.5", "facecolor": colour, "edgecolor": "#666"})
             for label, x, y, colour in PIPELINE_STEPS]
    for a, b in _ARROWS:  # from the side (or bottom) of one box to the side (or top) of the next
        down = PIPELINE_STEPS[a][2] > PIPELINE_STEPS[b][2]
        ax.annotate("", xy=(0.5, 1.0) if down else (0.0, 0.5), xycoords=boxes[b],
                    xytext=(0.5, 0.0) if down else (1.0, 0.5), textcoords=boxes[a],
                    arrowprops={"arrowstyle": "->", "color": "#444", "shrinkA": 6, "shrinkB": 6})
    ax.text(3.25, 1.0, "once, ahead of time", ha="center", va="center", fontsize=9, style="italic")
    ax.text(3.25, -0.55, "for every question", ha="center", va="center", fontsize=9, style="italic")
    ax.set_xlim(-0.5, 3.9)
    ax.set_ylim(-0.8, 1.5)
    ax.axis("off")
    fig.tight_layout()
    plt.close(fig)  # returned to be shown once, by the notebook's display of the cell's value
    return fig
