"""The paper's numbers (transcribed in reports/paper/results.csv; see its README). Kept apart from
measured numbers; values stay the strings printed in the paper so tables show them digit for
digit."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

PAPER_CSV = Path(__file__).resolve().parent / "paper" / "results.csv"
# The peers' numbers (CS-KD, TF-KD-reg) as the official PS-KD README publishes them (its CIFAR-100
# and ImageNet tables; github lgcnsai/PS-KD-Pytorch): not in the seed paper, shown in its "paper"
# column only on the peers' own lines, with a header note.
PEER_CSV = PAPER_CSV.parent / "pskd_readme.csv"
PEER_NOTE = ("CS-KD and TF-KD-reg lines (beyond the seed paper): the 'paper' column holds the "
             "numbers of the official PS-KD README (github lgcnsai/PS-KD-Pytorch), transcribed in "
             "reports/paper/pskd_readme.csv.")
AURC_NOTE = ("AURC is x10^3: the paper's header says x10^2 but its values are x10^3 "
             "(the official code multiplies by 1000), as are ours.")


@dataclass(frozen=True)
class PaperValue:
    table: str
    row: str
    method: str
    metric: str
    text: str  # as printed, e.g. "1.10"
    note: str = ""

    @property
    def value(self) -> float:
        return float(self.text)

    @property
    def decimals(self) -> int:
        return len(self.text.split(".")[1]) if "." in self.text else 0


def load_paper(path: str | Path = PAPER_CSV) -> list[PaperValue]:
    """All transcribed cells, in file order (which is the paper's row order)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for i, r in enumerate(rows, 2):
        try:
            float(r["value"])
        except (TypeError, ValueError):
            raise ValueError(f"{path}:{i}: value {r['value']!r} is not a number") from None
        out.append(PaperValue(r["table"], r["row"], r["method"], r["metric"], r["value"],
                              r.get("note") or ""))
    return out


def paper_table(table: str, path: str | Path = PAPER_CSV, peers: bool = True) -> dict:
    """{(row, method, metric): PaperValue} of one table, in the paper's order, then (peers=True)
    the peers' README numbers for lines the paper does not have."""
    out = {(p.row, p.method, p.metric): p for p in load_paper(path) if p.table == table}
    if peers and Path(path) == PAPER_CSV and PEER_CSV.is_file():
        for p in load_paper(PEER_CSV):
            if p.table == table:
                out.setdefault((p.row, p.method, p.metric), p)
    return out
