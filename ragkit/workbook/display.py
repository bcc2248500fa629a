"""Show answers in a notebook: what the model wrote next to what ragkit kept, and streamed text.

- `answer_html(answer)`: two columns, the model's own text and the checked answer with its mode and
  notes, so a dropped or replaced answer is seen, never mistaken for what the model said.
- `show_answer(answer)`: displays that in Jupyter (or prints a plain version elsewhere).
- `show_stream(pieces)`: shows streamed text as one output that grows in place (one line per token
  in a saved notebook otherwise), and returns the whole text, to be checked like any answer.

>>> from ragkit.generate import Answer
>>> a = Answer("q", "Tea is a leaf [1].", [], [], "checked", raw="Tea is a leaf [1]. It cures colds [1].",
...            notes=("dropped 1 sentence the sources do not support",))
>>> html = answer_html(a)
>>> "It cures colds" in html and "checked" in html and "dropped 1 sentence" in html
True
"""
from __future__ import annotations

import html as _html
from typing import TYPE_CHECKING, Iterable

from ..progress import in_notebook

if TYPE_CHECKING:
    from ..generate import Answer

__all__ = ["answer_html", "answer_text", "show_answer", "show_stream"]

MODES = {
    "generated": "kept as the model wrote it: every sentence is supported by the source it cites",
    "checked": "the checks changed it: a sentence the sources do not support dropped, or a citation fixed (see the notes)",
    "extractive": "nothing the model wrote was supported, so these are the closest source sentences, quoted",
    "not_in_context": "no source was relevant enough: the model was not asked, nothing is invented",
}


def answer_text(answer: "Answer") -> str:
    """Return the plain-text version of `answer_html` (for a terminal or a test).

    >>> from ragkit.generate import Answer
    >>> print(answer_text(Answer("q", "Tea is a leaf [1].", [], [], "generated", raw="Tea is a leaf [1].")))
    the model wrote : Tea is a leaf [1].
    ragkit's answer : Tea is a leaf [1].
    mode            : generated (kept as the model wrote it: every sentence is supported by the source it cites)
    """
    lines = [f"the model wrote : {answer.raw.strip() or '(nothing: the model was not asked)'}",
             f"ragkit's answer : {answer.text}",
             f"mode            : {answer.mode} ({MODES.get(answer.mode, '')})"]
    lines += [f"  - {note}" for note in answer.notes]
    return "\n".join(lines)


def answer_html(answer: "Answer") -> str:
    """Return the model's text and the checked answer side by side, with the mode and notes under them."""
    def column(title: str, body: str, colour: str) -> str:
        return (f'<div style="flex:1;min-width:16em;padding:0.4em 0.8em;border-left:4px solid {colour}">'
                f'<div style="font-weight:bold">{title}</div>'
                f'<div style="white-space:pre-wrap">{_html.escape(body)}</div></div>')

    raw = answer.raw.strip() or "(nothing: the model was not asked)"
    notes = "".join(f"<li>{_html.escape(n)}</li>" for n in answer.notes)
    return (f'<div class="ragkit-answer"><div style="display:flex;gap:1em;flex-wrap:wrap">'
            f'{column("What the model wrote", raw, "#999")}'
            f'{column("What ragkit answers", answer.text, "#2a7")}</div>'
            f'<div style="margin-top:0.3em"><b>mode: {_html.escape(answer.mode)}</b>: '
            f'{_html.escape(MODES.get(answer.mode, ""))}</div>'
            + (f"<ul>{notes}</ul>" if notes else "") + "</div>")


def show_answer(answer: "Answer") -> None:
    """Display `answer_html(answer)` in a notebook, or print `answer_text(answer)` elsewhere."""
    if in_notebook():
        from IPython.display import HTML, display

        display(HTML(answer_html(answer)))
    else:
        print(answer_text(answer))


def show_stream(pieces: Iterable[str]) -> str:
    """Show text pieces as they arrive, as one output updated in place, and return the whole text.

    >>> show_stream(["Tea ", "is ", "a leaf."])
    Tea is a leaf.
    'Tea is a leaf.'
    """
    text = ""
    if not in_notebook():
        for piece in pieces:
            text += piece
            print(piece, end="", flush=True)
        print()
        return text
    from IPython.display import display

    handle = display({"text/plain": ""}, raw=True, display_id=True)
    for piece in pieces:
        text += piece
        handle.update({"text/plain": text}, raw=True)
    return text
