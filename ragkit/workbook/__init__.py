"""The workbook's pictures: thin layers over what the pipeline already returned, nothing recomputed.

- `widgets`: `compare(index, backend, questions)`, embedding-only next to reranked, with sliders;
  `show_result(result)`, the same two lists as static HTML.
- `plots`: score distributions, rank movement, relevant vs non-relevant scores, metric curves.
- `samples`: `write_samples(folder)`, a PDF, an HTML page and a Markdown note to index (chapter 9).

>>> from ragkit.workbook import compare, rank_movement      # doctest: +SKIP
"""
from __future__ import annotations

from .plots import metric_curve, rank_movement, relevance_histogram, score_distributions
from .widgets import Compare, compare, show_result

__all__ = ["Compare", "compare", "metric_curve", "rank_movement", "relevance_histogram", "score_distributions",
           "show_result"]
