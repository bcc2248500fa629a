"""Headings: where the sections of a markdown or reStructuredText document start, and their paths.

Markdown: `# Title` (ATX) and setext titles (a line underlined with === or ---); fenced code and YAML
front matter are skipped. reST: a title underlined (optionally also overlined) with a repeated
punctuation character; levels follow the order in which the styles first appear.

>>> sections("# Install\\nUse pip.\\n\\n## From source\\nClone it.")
[(0, 0, ''), (0, 20, 'Install'), (20, 44, 'Install > From source')]
"""
from __future__ import annotations

import re

import numpy as np

__all__ = ["headings", "sections"]

_ATX = re.compile(r" {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r" {0,3}(```|~~~)")
_REST_ADORNMENT = "=-`:'\"~^_*+#<>."


def headings(text: str) -> list[tuple[int, int, str]]:
    """Return (offset of the heading's first line, level, title) for each heading, in order."""
    lines = text.splitlines(keepends=True)
    offsets = np.concatenate([[0], np.cumsum([len(line) for line in lines])]).tolist()
    bare = [line.rstrip("\r\n") for line in lines]
    markdown = any(_ATX.match(line) or line.startswith("```") for line in bare)
    adornment = "=-" if markdown else _REST_ADORNMENT
    styles: dict[tuple[str, bool], int] = {}  # reST: levels go by order of first appearance
    out, fenced, i, consumed = [], None, 0, -1  # consumed: last line used by a heading
    if markdown and bare and bare[0].strip() == "---":  # skip YAML front matter
        i = next((k + 1 for k in range(1, len(bare)) if bare[k].strip() in ("---", "...")), 0)
    while i < len(bare):
        line = bare[i]
        if markdown and (m := _FENCE.match(line)):
            fenced = None if fenced == m.group(1) else fenced or m.group(1)
            i += 1
            continue
        if fenced:
            i += 1
            continue
        if markdown and (m := _ATX.match(line)) and m.group(2).strip():
            out.append((offsets[i], len(m.group(1)), m.group(2).strip()))
            i += 1
            continue
        title = line.strip()
        under = bare[i + 1].rstrip() if i + 1 < len(bare) else ""
        over = bool(under) and i - 1 > consumed and bare[i - 1].rstrip() == under  # reST: rule above too
        if title and (over or not line[0].isspace()) and not _is_rule(title, adornment):
            if _is_rule(under, adornment) and len(under) >= min(3, len(title)):
                if markdown:
                    level = 1 if under[0] == "=" else 2
                else:
                    level = styles.setdefault((under[0], over), len(styles) + 1)
                out.append((offsets[i - 1 if over else i], level, title))
                consumed = i + 1
                i += 2
                continue
        i += 1
    return out


def _is_rule(line: str, chars: str) -> bool:
    """Is `line` one punctuation character repeated, as in '=====' or '-----'?"""
    return len(line) >= 1 and line[0] in chars and line == line[0] * len(line)


def sections(text: str) -> list[tuple[int, int, str]]:
    """Return (start, end, heading path) spans; text before the first heading has path ''."""
    bounds, stack = [(0, "")], []
    for offset, level, title in headings(text):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        bounds.append((offset, " > ".join(t for _, t in stack)))
    ends = [b[0] for b in bounds[1:]] + [len(text)]
    return [(start, end, path) for (start, path), end in zip(bounds, ends)]
