"""The `ragkit` command as a newcomer uses it: first command on a fresh machine, then their own files."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest


def ragkit(*args, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in {"OPENROUTER_API_KEY", "RAGKIT_BASE_URL"}}
    return subprocess.run([sys.executable, "-m", "ragkit.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def cited_and_listed(stdout: str) -> tuple[set[int], set[int]]:
    answer, _, sources = stdout.partition("\nSources:\n")
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
    listed = {int(n) for n in re.findall(r"^\s+\[(\d+)\] ", sources, flags=re.M)}
    return cited, listed


def test_ask_as_the_very_first_command_builds_the_demo_index_and_cites(tmp_path):
    out = ragkit("ask", "What does a reranker do?", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cited, listed = cited_and_listed(out.stdout)
    assert cited and cited <= listed, out.stdout
    assert "reranking" in out.stdout.lower()
    assert "building one from the demo corpus" in out.stderr
    assert "local backend" in out.stderr and "OPENROUTER_API_KEY" in out.stderr
    assert re.search(r"retrieve \d+ ms · rerank \d+ ms · generate \d+ ms", out.stdout)
    assert (tmp_path / ".ragkit" / "index" / "index.json").exists()


def test_a_refusal_names_the_closest_passage_and_how_to_use_it(tmp_path):
    out = ragkit("ask", "Why do language models hallucinate?", "--threshold", "0.99", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("The sources do not contain the answer.")
    hint = re.search(r"the closest passage, '(.+?)', scored ([\d.]+), under the threshold 0\.99; a threshold "
                     r"of [\d.]+ would let it through\n  - to answer from it anyway: ragkit ask (.+) --threshold "
                     r"([\d.]+)$", out.stdout, flags=re.M)
    assert hint, out.stdout
    title, score, question, lower = hint.groups()
    assert "Hallucination" in title and float(lower) <= float(score) < 0.99
    assert shlex.split(question) == ["Why do language models hallucinate?"]
    again = ragkit("ask", *shlex.split(question), "--threshold", lower, cwd=tmp_path)  # as the hint says
    assert again.returncode == 0, again.stderr
    cited, listed = cited_and_listed(again.stdout)
    assert cited and cited <= listed and "Hallucination" in again.stdout.partition("Sources:")[2]


def test_index_own_files_then_ask(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kettles.md").write_text("# Kettles\n\nA kettle boils water. The Zorbex 3000 kettle has a "
                                     "blue handle and boils a litre in ninety seconds.\n")
    (docs / "toasters.md").write_text("# Toasters\n\nA toaster browns bread with glowing wires.\n")
    built = ragkit("index", str(docs), cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "indexed 2 documents" in built.stderr
    out = ragkit("ask", "What colour is the handle of the Zorbex 3000?", "-k", "2", "--keep", "2",
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Kettles" in out.stdout.partition("Sources:")[2]


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", "no such file or folder"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "no .txt/.md/.markdown/.rst/.html/.htm/.pdf files"),
])
def test_index_bad_paths_get_one_clear_line(tmp_path, make, message):
    out = ragkit("index", str(make(tmp_path)), cwd=tmp_path)
    assert out.returncode != 0
    assert message in out.stderr.lower() and "Traceback" not in out.stderr


def test_ask_with_an_index_from_another_model_says_how_to_fix(tmp_path):
    import numpy as np

    from ragkit.types import Chunk
    from ragkit.index import VectorIndex

    VectorIndex(np.ones((1, 8)), [Chunk("a#0", "a", "A", "text", 0, 0, 4)], "other/model").save(
        tmp_path / ".ragkit" / "index")
    out = ragkit("ask", "anything?", cwd=tmp_path)
    assert out.returncode == 1
    assert "index built with 'other/model'" in out.stderr and "Traceback" not in out.stderr
