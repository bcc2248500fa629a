"""The workbook's display helpers, in a real Jupyter kernel: what a learner sees in the saved notebook."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ragkit import config

ROOT = Path(__file__).resolve().parent.parent


def run_cells(*sources: str) -> list:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return nb.cells


def test_a_streamed_answer_is_one_output_that_ends_as_the_whole_text():
    cells = run_cells("from ragkit.workbook.display import show_stream\n"
                      "text = show_stream(iter(['Tea ', 'is ', 'a leaf [1].']))",
                      "print(repr(text))")
    outputs = cells[0].outputs
    assert len(outputs) == 1, outputs  # not one line per piece
    assert outputs[0]["data"]["text/plain"] == "Tea is a leaf [1]."
    assert cells[1].outputs[0]["text"].strip() == "'Tea is a leaf [1].'"


def test_an_answer_shows_what_the_model_wrote_beside_what_ragkit_keeps():
    cells = run_cells("from ragkit.generate import Answer\n"
                      "from ragkit.workbook.display import show_answer\n"
                      "show_answer(Answer('q', 'Tea is a leaf.', [], [], 'extractive', raw='Tea cures colds [1].'))")
    html = cells[0].outputs[0]["data"]["text/html"]
    assert html.index("What the model wrote") < html.index("Tea cures colds") < html.index("What ragkit answers")
    assert "quoted" in html  # the extractive mode says the right column is the sources' words


def test_chapter_0_names_the_online_models_ragkit_uses():
    nb = nbformat.read(ROOT / "notebooks" / "00-quickstart.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for name in (config.OPENROUTER_EMBEDDING_MODEL, config.OPENROUTER_RERANK_MODEL, config.OPENROUTER_CHAT_MODEL,
                 config.LOCAL_EMBEDDING_MODEL, config.LOCAL_CHAT_MODEL, f"{config.OFFLINE_RERANK_THRESHOLD:g}"):
        assert f"`{name}`" in text or name in text, name


def test_the_pipeline_figure_has_the_four_steps():
    from ragkit.workbook.figures import pipeline_figure

    labels = " ".join(t.get_text() for t in pipeline_figure().axes[0].texts)
    assert all(f"{n} · {step}" in labels for n, step in enumerate(["index", "retrieve", "rerank", "generate"], 1))
