"""tools/study_excerpt.py: the study's tables for docs/reproduction.md cut from a rendered report
(only methods with scored runs, in both tables), written between the page's markers, nothing else
of the page touched; a rerun on the same report changes nothing."""
import importlib.util
from pathlib import Path

import pytest

from reports.logs import find_runs
from reports.study import study_settings, to_markdown

spec = importlib.util.spec_from_file_location("study_excerpt", Path(__file__).resolve().parent.parent / "tools/study_excerpt.py")
study_excerpt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study_excerpt)


@pytest.fixture
def report(tmp_path):
    from tests.reports.test_study import _run
    r = tmp_path / "runs"
    for s in range(2):
        _run(r, "baseline", s, top1=20.0 + s)
        _run(r, "selfkd", s, top1=19.0 + s, alpha_T=0.7)
    _run(r, "ls", 0, scored=False)  # trained, not scored: not in the excerpt
    p = tmp_path / "study.md"
    p.write_text(to_markdown(study_settings(find_runs([r])[0])))
    return p


def test_excerpt_keeps_the_scored_methods_and_their_comparisons(tmp_path, report, capsys):
    page = tmp_path / "page.md"
    B, E = study_excerpt.begin("study_tiny"), study_excerpt.end("study_tiny")
    other = f"{study_excerpt.begin('other_row')}\nOTHER-TABLE\n{study_excerpt.end('other_row')}\n"
    page.write_text(f"# Page\n\nbefore\n\n{B}\nOLD-TABLE\n{E}\n\n{other}\nafter\n")
    assert study_excerpt.main([str(report), str(page), "--row", "study_tiny"]) == 0
    text = page.read_text()
    assert text.startswith("# Page\n\nbefore\n\n") and text.endswith(f"{E}\n\n{other}\nafter\n")
    body = text[text.index(B):text.index(E)]
    assert "OLD-TABLE" not in body and "| Baseline | 2 of 5 | 20.50 ± 0.71 |" in body
    assert "| Self-KD + temperature scaling |" in body and "Label Smoothing" not in body and "CS-KD" not in body
    compare = [ln for ln in body.splitlines() if ln.startswith("| Self-KD | top-1 error")]
    assert len(compare) == 3 and "-1.00 ± 0.00 (n = 2)" in compare[0]
    header = body.splitlines()[1]
    assert header.count("|") == body.splitlines()[2].count("|")  # the separator fits the header
    capsys.readouterr()
    assert study_excerpt.main([str(report), str(page), "--row", "study_tiny"]) == 0
    assert capsys.readouterr().out.endswith("unchanged\n") and page.read_text() == text


@pytest.mark.parametrize("page_text, row, msg", [
    ("no markers\n", "study_tiny", "has no"),
    (f"{study_excerpt.begin('other_row')}\n{study_excerpt.end('other_row')}\n", "study_tiny", "has no"),
    (f"{study_excerpt.begin('study_tiny')}\n{study_excerpt.end('study_tiny')}\n" * 2, "study_tiny", "has no single"),
    (f"{study_excerpt.begin('other_row')}\n{study_excerpt.end('other_row')}\n", "other_row", "no setting 'other_row'"),
])
def test_refusals_are_one_line_and_leave_the_page(tmp_path, report, capsys, page_text, row, msg):
    page = tmp_path / "page.md"
    page.write_text(page_text)
    assert study_excerpt.main([str(report), str(page), "--row", row]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and err.count("\n") == 1 and page.read_text() == page_text


def test_glance_goes_between_its_own_markers(tmp_path, report, capsys):
    """--glance writes the setting's "At a glance" table between the glance markers (a README) and
    leaves the same setting's full-table markers alone."""
    page = tmp_path / "README.md"
    tables = f"{study_excerpt.begin('study_tiny')}\nFULL\n{study_excerpt.end('study_tiny')}\n"
    G, E = study_excerpt.begin("study_tiny", "glance"), study_excerpt.end("study_tiny", "glance")
    page.write_text(f"# Readme\n\n{G}\nOLD\n{E}\n\n{tables}")
    assert study_excerpt.main([str(report), str(page), "--row", "study_tiny", "--glance"]) == 0
    text = page.read_text()
    body = text[text.index(G) + len(G):text.index(E)].strip().splitlines()
    assert body[0] == "| Method | n (of planned) | top-1 error (%) | NLL | ECE (%) | AURC (x10^3) |"
    assert [ln.split(" | ")[0] for ln in body[2:]] == ["| Baseline", "| Baseline + temperature scaling",
                                                        "| Self-KD", "| Self-KD + temperature scaling"]
    assert "(-1.00 ± 0.00)" in body[4] and text.endswith(tables)
