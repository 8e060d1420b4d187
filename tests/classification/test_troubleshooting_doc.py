"""docs/troubleshooting.md lists what each bad input of classification.train says: every case of
the tested catalogue (tests/classification/test_safety.py) has its row there, and for the cases
given by overrides alone the row's message is, word for word, what the command prints now.
`python tools/troubleshooting_doc.py` rewrites the table from the catalogue."""
import re

import pytest
import torch

from classification.train import main
from tests.classification.test_safety import CATALOGUE, TINY
from tests.conftest import REPO

PAGE = REPO / "docs" / "troubleshooting.md"


def _rows() -> dict:
    """{input: (arguments cell, message cell)} of the page's first table (classification.train)."""
    text = PAGE.read_text(encoding="utf-8")
    table = text.split("| input | arguments | message |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.strip().splitlines()[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows[cells[0]] = (cells[1], " | ".join(cells[2:]))
    return rows


def _printed(message_cell: str) -> str:
    """The message as printed: the first `...` of the cell."""
    return re.match(r"`(.*?)`(?:\s|$)", message_cell).group(1)


def test_every_catalogue_case_has_its_row(tmp_path):
    rows = _rows()
    missing = [name for name, _, _ in CATALOGUE if name not in rows]
    assert not missing, f"run python tools/troubleshooting_doc.py: {PAGE.name} lacks {missing}"
    for name, _, words in CATALOGUE:
        assert words in _printed(rows[name][1]), (name, words)


# the cases given by overrides alone: a lambda (the named builders write files) naming no path
PURE = [(name, args) for name, args, _ in CATALOGUE
        if args.__name__ == "<lambda>" and all("/" not in a for a in args(REPO / "x"))]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the page's messages are a machine's without a GPU")
@pytest.mark.parametrize("name,args", PURE, ids=[p[0] for p in PURE])
def test_documented_message_is_what_is_printed(tmp_path, capsys, monkeypatch, name, args):
    import classification.models as models
    # the page lists the project's own models: a plugin another test registered is not one of them
    monkeypatch.setattr(models, "_MODELS", {k: f for k, f in models._MODELS.items()
                                            if f.__module__.startswith("classification.")})
    extra = args(tmp_path)
    if any(a.startswith(("table=keep", "run_id=precious")) or a == "--resume" for a in extra):
        pytest.skip("needs the catalogue's finished run (test_safety checks the words)")
    assert main([*TINY, f"out_dir={tmp_path / 'runs'}", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err == _printed(_rows()[name][1]), "run python tools/troubleshooting_doc.py"
