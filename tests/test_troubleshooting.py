"""docs/troubleshooting.md quotes only messages ragkit really prints: each line of its `ragkit` blocks
must be made of message templates in ragkit's source (or the Makefile), values aside.

A template is any string in the code, an f-string's `{values}` standing for any text. A line passes
when templates match it and their fixed text covers most of it (the rest: paths, names, numbers).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "troubleshooting.md"
MIN_LITERAL = 20  # a template needs this many fixed characters to count
COVERED = 0.5     # the share of a line the templates' fixed text must cover


def docstrings(tree: ast.AST) -> set[int]:
    """Return the ids of the docstring nodes (examples in docstrings do not count as messages)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def templates() -> list[re.Pattern]:
    """Return every string in ragkit's code as a pattern: its fixed text literally, each {value} as any text."""
    found = []
    for path in sorted((ROOT / "ragkit").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                parts = [(f"({re.escape(v.value)})", len(v.value)) if isinstance(v, ast.Constant)
                         else (r"[\s\S]*?", 0) for v in node.values]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                parts = [(f"({re.escape(node.value)})", len(node.value))]
            else:
                continue
            if sum(n for _, n in parts) >= MIN_LITERAL:
                found.append(re.compile("".join(p for p, _ in parts)))
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    found += [re.compile(f"({re.escape(m)})") for m in re.findall(r'echo "([^"$]{20,})"', make)]
    return found


def quoted() -> list[str]:
    """Return the lines of the page's ```ragkit blocks."""
    blocks = re.findall(r"^```ragkit\n(.*?)^```", PAGE.read_text(encoding="utf-8"), flags=re.M | re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


TEMPLATES = templates()


def covered(line: str) -> float:
    """Return the share of `line`'s words that the fixed text of the templates matching it covers; values
    (words with a digit, a slash or a quote: paths, names, numbers) and the `ragkit: ErrorName:` that the
    command puts before every error are left out."""
    chars = set()
    for template in TEMPLATES:
        found = template.search(line)
        if found:
            for group in range(1, (template.groups or 0) + 1):
                chars.update(range(*found.span(group)))
    prefix = re.match(r"ragkit: [A-Z]\w+: ", line)
    words = [w for w in re.finditer(r"\S+", line) if not re.search(r"[\d/'\"]", w.group())
             and w.start() >= (prefix.end() if prefix else 0)]
    counted = [i for w in words for i in range(*w.span())]
    return sum(i in chars for i in counted) / max(1, len(counted))


def test_the_page_quotes_messages():
    assert len(quoted()) >= 15


@pytest.mark.parametrize("line", quoted())
def test_each_quoted_message_is_in_the_source(line):
    assert covered(line) >= COVERED, f"no message in ragkit's source prints: {line} ({covered(line):.0%} found)"


def test_a_changed_message_would_be_caught():
    assert covered("ragkit: no index at /x; build one first: ragkit index YOUR_DOCS --index /x") > 0.8
    assert covered("ragkit: there is no index in /x yet; please build it first with ragkit index") < COVERED
    assert covered("ragkit: IndexBusy: someone else is using the index at /x; try again later") < COVERED
