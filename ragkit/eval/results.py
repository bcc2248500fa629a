"""Techniques measured, kept: save a measurement to JSON, read it back, and tabulate it against the base.

Chapter 8 reads what `benchmarks/techniques.py` measured (minutes of model work) instead of running
it again: the file holds every question's scores, so the table, the intervals and the figure are
computed from it in the chapter (`tests/test_notebooks.py` checks what the chapter says of it).

>>> from ragkit.types import Usage
>>> base = Measured("base", pd.DataFrame({"ndcg@10": [0.5, 1.0], "recall@100": [1.0, 1.0]}, index=["q1", "q2"]),
...                 {"embed": 1, "rerank": 1, "chat": 0})
>>> worse = pd.DataFrame({"ndcg@10": [0.0, 1.0], "recall@100": [1.0, 1.0]}, index=["q1", "q2"])
>>> other = Measured("mmr", worse, base.calls, note="lambda 0.7")
>>> row = techniques_table({"toy": {"base": base, "mmr": other}}).iloc[0]
>>> row["technique"], float(row["ndcg@10"]), float(row["difference"])
('mmr', 0.5, -0.25)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..types import Usage
from .techniques import METRICS, Measured

__all__ = ["TARGET", "TOLERANCE", "Results", "against_target", "load_results", "save_results", "techniques_table"]

FORMAT = 1
TARGET, TOLERANCE = 0.75, 0.01  # issue 17's bar: SciFact nDCG@10 at least this, losing no more than this elsewhere


@dataclass(frozen=True)
class Results:
    """A saved measurement: what was measured with (`info`), and per set and technique a `Measured`."""

    info: dict
    measured: dict[str, dict[str, Measured]]

    def table(self) -> pd.DataFrame:
        """Return `techniques_table` of the measurement."""
        return techniques_table(self.measured)


def save_results(path: str | Path, measured: dict[str, dict[str, Measured]], info: dict) -> Path:
    """Write the measurement to `path` as JSON (per set, per technique: costs, note, every question's scores)."""
    data = {"format": FORMAT, "info": info, "sets": {
        name: {t: {"calls": m.calls, "chat_usage": [m.chat_usage.requests, m.chat_usage.prompt_tokens,
                                                    m.chat_usage.completion_tokens],
                   "seconds": None if m.seconds != m.seconds else round(m.seconds, 4), "note": m.note,
                   "scores": {q: [round(float(v), 6) for v in row] for q, row in
                              zip(m.scores.index, m.scores[list(METRICS)].to_numpy())}}
               for t, m in by_name.items()}
        for name, by_name in measured.items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)  # all or nothing: a measurement cut short never leaves half a file
    return path


def load_results(path: str | Path) -> Results:
    """Return the measurement saved at `path` by `save_results`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} holds format {data.get('format')!r}, this ragkit reads {FORMAT}; measure again "
                         "with `python benchmarks/techniques.py`")
    measured = {}
    for name, by_name in data["sets"].items():
        measured[name] = {}
        for t, m in by_name.items():
            scores = pd.DataFrame.from_dict(m["scores"], orient="index", columns=list(METRICS))
            measured[name][t] = Measured(t, scores, m["calls"], Usage(*m["chat_usage"]),
                                         float("nan") if m["seconds"] is None else m["seconds"], m["note"])
    return Results(data["info"], measured)


def techniques_table(measured: dict[str, dict[str, Measured]]) -> pd.DataFrame:
    """Return one row per (set, technique) against that set's `"base"`: means, paired difference in
    nDCG@10 with its 95% interval and p-value, recall@100 and its difference, calls and tokens per question.
    """
    rows = []
    for name, by_name in measured.items():
        base = by_name["base"]
        for t, m in by_name.items():
            if t == "base":
                continue
            row = m.row(base)
            row["recall difference"] = float(m.scores["recall@100"].mean()
                                             - base.scores.loc[m.scores.index, "recall@100"].mean())
            rows.append({"set": name, **row})
    return pd.DataFrame(rows)


def format_techniques(name: str, measured: dict[str, Measured]) -> str:
    """Return the techniques of one set as a text table against its base (what `ragkit eval` prints)."""
    base = measured["base"]
    lines = [f"{name}: techniques against the base {base.note} (nDCG@10 {base.scores['ndcg@10'].mean():.4f}, "
             f"recall@100 {base.scores['recall@100'].mean():.4f}, {len(base.scores)} questions)", "",
             f"{'technique':14s} {'n':>4s} {'nDCG@10':>8s} {'difference (95% CI)':>28s} {'p':>7s} "
             f"{'recall@100':>10s} {'calls e/r/c':>11s} {'s/q':>6s}  note"]
    for _, r in techniques_table({name: measured}).iterrows():
        calls = "/".join(f"{r[f'{k} calls']:g}" for k in ("embed", "rerank", "chat"))
        lines.append(f"{r['technique']:14s} {r['questions']:4d} {r['ndcg@10']:8.4f} "
                     f"{r['difference']:+8.4f} ({r['low']:+.4f} to {r['high']:+.4f}) {r['p']:7.4f} "
                     f"{r['recall@100']:10.4f} {calls:>11s} {r['seconds']:6.2f}  {r['note']}")
    return "\n".join(lines)


def against_target(table: pd.DataFrame, target: float = TARGET, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Return, per technique run on SciFact, its SciFact nDCG@10, its worst difference from the base on
    the other sets, and whether it meets the bar (at least `target` there, no worse than `-tolerance`
    elsewhere; a technique no other set ran does not), best on SciFact first.

    >>> t = pd.DataFrame({"set": ["scifact", "scifact", "py", "py"], "technique": ["x", "y", "x", "y"],
    ...                   "ndcg@10": [0.76, 0.75, 0.9, 0.9], "difference": [0.02, 0.0, -0.02, 0.0]})
    >>> against_target(t)["meets the bar"].to_dict()    # x loses 0.02 on the other set
    {'x': False, 'y': True}
    """
    scifact = table[table["set"] == "scifact"].set_index("technique")["ndcg@10"]
    worst = table[table["set"] != "scifact"].groupby("technique")["difference"].min().reindex(scifact.index)
    out = pd.DataFrame({"SciFact nDCG@10": scifact, "worst difference, Python sets": worst})
    out["meets the bar"] = (out["SciFact nDCG@10"] >= target) & (out["worst difference, Python sets"] >= -tolerance)
    return out.sort_values("SciFact nDCG@10", ascending=False)
