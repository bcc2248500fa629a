"""Chapter 8's measurement machinery: cross-validation, technique names, saved results, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ragkit.eval.results import load_results, save_results, techniques_table
from ragkit.eval.techniques import TECHNIQUES, Measured, cross_validated, split_configs
from ragkit.types import Usage


def test_cross_validation_scores_each_fold_with_a_setting_chosen_without_it():
    # "a" wins overall on the first four questions; "b" wins only the last, which sits alone in its fold.
    a = pd.DataFrame({"ndcg@10": [1.0, 1.0, 1.0, 1.0, 0.0]})
    b = pd.DataFrame({"ndcg@10": [0.0, 0.0, 0.0, 0.0, 1.0]})
    held_out, chosen = cross_validated({"a": a, "b": b}, folds=5)
    assert chosen == ["a"] * 5  # the question "b" wins never chooses for itself
    assert held_out["ndcg@10"].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_technique_names_split_from_configurations():
    assert split_configs("bm25,mmr") == (["bm25"], ["mmr"])
    assert split_configs("techniques") == ([], list(TECHNIQUES))
    with pytest.raises(ValueError, match="choose from"):
        split_configs("mmr,nonsense")


def test_results_round_trip(tmp_path):
    scores = pd.DataFrame({"ndcg@10": [0.5, 1.0], "recall@100": [1.0, 0.0]}, index=["q1", "q2"])
    base = Measured("base", scores, {"embed": 1, "rerank": 1, "chat": 0}, Usage(), 0.25, "dense+rerank")
    hyde = Measured("hyde", scores * 0 + 1, {"embed": 1, "rerank": 1, "chat": 1}, Usage(2, 100, 40), 1.5, "x")
    path = save_results(tmp_path / "r.json", {"toy": {"base": base, "hyde": hyde}}, {"date": "2026-12-02"})
    back = load_results(path)
    assert not list(tmp_path.glob("*.tmp"))
    got = back.measured["toy"]["hyde"]
    assert got.scores.equals(hyde.scores) and got.chat_usage == Usage(2, 100, 40) and got.note == "x"
    row = back.table().iloc[0]
    assert row["technique"] == "hyde" and row["difference"] == pytest.approx(0.25) and row["chat tokens"] == 70


def test_saved_measurement_says_what_each_technique_did():
    table = load_results(Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "techniques.json").table()
    assert set(table["set"]) == {"python-reference", "python-stdlib", "scifact"}
    assert set(table["technique"]) <= set(TECHNIQUES)
    assert ((table["low"] <= table["difference"]) & (table["difference"] <= table["high"])).all()


def test_eval_cli_names_the_techniques_for_an_unknown_one():
    out = subprocess.run([sys.executable, "-m", "ragkit", "eval", "--dataset", "python-stdlib", "--configs",
                          "nonsense"], capture_output=True, text=True)
    assert out.returncode == 1 and "ragkit: eval:" in out.stderr and "choose from" in out.stderr
    assert "small-to-big" in out.stderr and "'techniques' for all" in out.stderr


def test_eval_cli_runs_a_configuration_on_a_packaged_set():
    out = subprocess.run([sys.executable, "-m", "ragkit", "eval", "--dataset", "python-stdlib", "--configs", "bm25",
                          "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["config"] for r in rows] == ["bm25"] and 0.3 < rows[0]["ndcg@10"] < 1.0
