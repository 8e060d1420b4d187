"""The transcribed paper numbers: complete, well-formed, and consistent with the paper's text."""
import re
from pathlib import Path

import pytest

from core.metrics import METRIC_NAMES
from reports.paper_data import load_paper, paper_table
from reports.tables import BLEU_TOK, MAP, TABLES, VOC_CLASSES

PAPER_MD = Path(__file__).resolve().parents[3] / "shared" / "docs" / "paper-self-kd.md"


def v(table, row, method, metric):
    return paper_table(table)[(row, method, metric)].value


def test_cell_counts_per_table():
    counts = {}
    for p in load_paper():
        counts[p.table] = counts.get(p.table, 0) + 1
    # 21 lines x 5 metrics; 5 x 5 + 2 reported rows x 2; 3 mAP; 3 x 3 BLEU; 3 x (20 AP + mAP).
    assert counts == {"table1": 105, "table2": 29, "table3": 3, "table4": 9, "table5": 63}


def test_keys_are_known_and_unique():
    seen = set()
    known = set(METRIC_NAMES) | {BLEU_TOK, MAP} | {f"ap.{c}" for c in VOC_CLASSES}
    for p in load_paper():
        assert p.table in TABLES
        assert p.metric in known, p
        key = (p.table, p.row, p.method, p.metric)
        assert key not in seen, f"duplicate cell {key}"
        seen.add(key)


def test_aurc_cells_carry_the_unit_note():
    aurc = [p for p in load_paper() if p.metric == "aurc"]
    assert len(aurc) == 21 + 5
    assert all(p.note == "aurc_x1e3" for p in aurc)


def test_differences_quoted_in_the_paper_text():
    # Sec. 3.1: "an improvement of 1.45% and 0.4% from baseline and LS on ResNeXt"
    r = "resnext29_8x64d"
    assert v("table1", r, "baseline", "top1_err") - v("table1", r, "selfkd", "top1_err") == pytest.approx(1.45)
    assert v("table1", r, "ls", "top1_err") - v("table1", r, "selfkd", "top1_err") == pytest.approx(0.40)
    # "it reduces ECE by 4.73% and 5.74% from Cutout and CutMix"
    p = "pyramidnet200"
    assert v("table1", p, "cutout", "ece") - v("table1", p, "selfkd", "ece") == pytest.approx(4.73)
    assert v("table1", p, "cutmix", "ece") - v("table1", p, "selfkd", "ece") == pytest.approx(5.74)
    # "top-1 error of 14.82% ... 1.68% improvement of Cutout"; "reduced by 0.46%"
    assert v("table1", p, "cutout", "top1_err") - v("table1", p, "cutout_selfkd", "top1_err") == pytest.approx(1.68)
    assert v("table1", p, "cutmix_sd", "top1_err") - v("table1", p, "cutmix_sd_selfkd", "top1_err") == pytest.approx(0.46)
    # "5.13% (Cutout+Self-KD), 0.97% (CutMix+Self-KD)" of ECE
    assert v("table1", p, "cutout", "ece") - v("table1", p, "cutout_selfkd", "ece") == pytest.approx(5.13)
    assert v("table1", p, "cutmix", "ece") - v("table1", p, "cutmix_selfkd", "ece") == pytest.approx(0.97)
    # Sec. 3.2: "ECE of 0.59% which is 1.57% improvements from ... CutMix only"
    assert v("table2", "resnet152", "cutmix", "ece") - v("table2", "resnet152", "cutmix_selfkd", "ece") == pytest.approx(1.57)
    # Sec. 3.3: "improves ... by 1.12% of the mean average precision (mAP) compared to ... LS"
    assert v("table3", "resnet152", "selfkd", "map") - v("table3", "resnet152", "ls", "map") == pytest.approx(1.12)
    # Abstract: "BLEU score of 30.0 and 36.2 on IWSLT15 English-to-German and German-to-English"
    assert v("table4", "iwslt15_en_de", "selfkd", "bleu_tok") == 30.0
    assert v("table4", "iwslt15_de_en", "selfkd", "bleu_tok") == 36.2


def test_table5_is_consistent_with_table3():
    for m in ("baseline", "ls", "selfkd"):
        aps = [v("table5", "resnet152", m, f"ap.{c}") for c in VOC_CLASSES]
        assert v("table5", "resnet152", m, "map") == v("table3", "resnet152", m, "map")
        # mAP = mean of the 20 APs; the paper's rounding leaves up to ~0.015 (Self-KD row).
        assert sum(aps) / 20 == pytest.approx(v("table3", "resnet152", m, "map"), abs=0.02)


@pytest.mark.skipif(not PAPER_MD.exists(), reason="paper markdown not available")
def test_tables_1_and_2_equal_the_markdown_cell_by_cell():
    lines = PAPER_MD.read_text(encoding="utf-8").splitlines()
    strip = lambda s: re.sub(r"</?b>", "", s)  # noqa: E731
    i = next(k for k, ln in enumerate(lines) if ln.startswith("Model\tMethods"))
    md1 = [strip(x) for ln in lines[i + 1:i + 22] for x in ln.split("\t")[-5:]]
    assert md1 == [p.text for p in load_paper() if p.table == "table1"]
    i = next(k for k, ln in enumerate(lines) if ln.startswith("Model\tTop-1"))
    md2 = [strip(x) for ln in lines[i + 1:i + 8] for x in ln.split("\t")[1:] if x != "-"]
    assert md2 == [p.text for p in load_paper() if p.table == "table2"]
