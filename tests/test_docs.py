"""The project's documentation lives in the repository and matches the code: no file points to
design notes outside it, docs/design.md's run-log schema is the one core/runlog.py enforces, the
files it names exist, links into it land on a heading, and environment.yml installs what the
Makefile installs."""
import re
import subprocess

import pytest
import yaml

from core import runlog
from tests.conftest import REPO

DESIGN = REPO / "docs" / "design.md"
# Spelled in pieces so that this file does not match itself.
OUTSIDE = [re.compile(p) for p in (r"\bDESIGN" + r"\.md\b", r"\bSTYLE" + r"\.md\b", r"shared" + r"/docs\b")]


def _repo_files(suffixes) -> list:
    """Tracked files and new ones git does not ignore (a file added in this change counts too)."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / f for f in out if f.endswith(suffixes) and (REPO / f).is_file()]


def test_no_file_refers_to_docs_outside_the_repository():
    hits = []
    for path in _repo_files((".py", ".md")):
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if any(p.search(line) for p in OUTSIDE):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}")
    assert not hits, "point these to docs/design.md (with a section name) instead:\n" + "\n".join(hits)


def _schema_table() -> dict:
    """{record: [required keys]} from the table between the runlog-schema markers of design.md."""
    text = DESIGN.read_text(encoding="utf-8")
    m = re.search(r"<!-- runlog-schema:begin -->(.*?)<!-- runlog-schema:end -->", text, re.S)
    assert m, "docs/design.md lacks the runlog-schema table markers"
    table = {}
    for line in m.group(1).strip().splitlines()[2:]:  # after the header and the |---| line
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 2, line
        record = cells[0].strip("`")
        keys = re.findall(r"`([^`]+)`", cells[1])
        assert keys and record not in table, line
        table[record] = keys
    return table


def test_design_doc_schema_is_what_runlog_enforces():
    table = _schema_table()
    # the constants, in their order
    assert table == {"meta": ["schema", *runlog.META_KEYS], "epoch": list(runlog.EPOCH_KEYS),
                     "final": list(runlog.FINAL_KEYS), "final.reliability": list(runlog.RELIABILITY_KEYS)}
    # and the behaviour: a record with the listed keys passes, one lacking any of them fails
    rel = dict.fromkeys(table["final.reliability"], [])
    values = {"schema": runlog.SCHEMA_VERSION, "metrics": {}, "reliability": rel}
    for kind in ("meta", "epoch", "final"):
        rec = {"type": kind, **{k: values.get(k, 0) for k in table[kind]}}
        runlog.validate_record(rec)
        for k in table[kind]:
            with pytest.raises(runlog.RunLogError, match=k):
                runlog.validate_record({key: v for key, v in rec.items() if key != k})
    final = {"type": "final", "metrics": {}, "reliability": rel, "wall_s": 0.0}
    runlog.validate_record({**final, "reliability": None})  # null is allowed (the doc says so)
    for k in table["final.reliability"]:
        with pytest.raises(runlog.RunLogError, match=k):
            runlog.validate_record({**final, "reliability": {x: [] for x in rel if x != k}})


def test_files_named_in_the_design_doc_exist():
    text = DESIGN.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:core|classification|translation|detection|reports|tools|examples|tests|docs)"
                           r"/[\w./-]*\.(?:py|md|csv|sh|yaml))", text))
    assert len(named) > 20
    missing = sorted(p for p in named if not (REPO / p).is_file())
    assert not missing, missing


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_into_the_design_doc_land_on_a_heading():
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", DESIGN.read_text(encoding="utf-8"), re.M)}
    links = []
    for path in _repo_files((".md", ".py")):
        for a in re.findall(r"design\.md#([\w-]+)", path.read_text(encoding="utf-8", errors="replace")):
            links.append((path.relative_to(REPO), a))
    assert links  # at least the design doc's own contents and translation/README.md
    bad = [f"{p}: #{a}" for p, a in links if a not in anchors]
    assert not bad, bad


def test_environment_yml_installs_what_the_makefile_installs():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    make = (REPO / "Makefile").read_text()
    assert "pytorch" not in env["channels"]  # no builds of the tested torch there
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    editable = next(p for p in pip if p.startswith("-e ."))
    extras = set(re.search(r"\[(.*)\]", editable).group(1).split(","))
    assert extras == set(re.findall(r'-e "\.\[(\w+)\]"', make)) == {"test", "translation"}
    # the tested torch / torchvision pair the README names
    pins = dict(p.split("==") for p in pip if p.startswith(("torch==", "torchvision==")))
    assert f"{pins['torch']} / {pins['torchvision']} pair" in (REPO / "README.md").read_text()
    # fairseq's build needs Cython and wheel first, then --no-build-isolation (its own command)
    assert {"cython>=0.29", "wheel"} <= set(pip)
    fairseq = re.search(r"--no-build-isolation (fairseq-fixed==[\d.]+)", make).group(1)
    assert f"pip install --no-build-isolation {fairseq}" in (REPO / "environment.yml").read_text()


def test_readme_is_short_and_its_local_links_land():
    """The README is what a researcher acts on (under ~200 lines of prose, the evidence in
    docs/reproduction.md, the bad inputs in docs/troubleshooting.md); every relative link in it
    and in the files it sends readers to names a file that exists, and an anchor a heading there."""
    readme = REPO / "README.md"
    lines = readme.read_text(encoding="utf-8").splitlines()
    # the prose a reader reads stays under 200 lines; tables (scanned, and the study's grows a row
    # pair per method as its runs land) get 40 more
    assert sum(not ln.startswith("|") for ln in lines) <= 200 and len(lines) <= 240
    pages = [readme, REPO / "docs/reproduction.md", REPO / "docs/troubleshooting.md",
             REPO / "classification/README.md", REPO / "detection/README.md", REPO / "translation/README.md",
             DESIGN]
    bad = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                bad.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md":
                heads = {_anchor(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)}
                if anchor not in heads:
                    bad.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not bad, bad


FIGURE = re.compile(r"(?<![\w.])([+-]?\d+(?:\.\d+)?)\s+±\s+(\d+(?:\.\d+)?)")  # a figure may wrap


def _study_text(readme: str) -> str:
    """The README's "Which method?" section (its answer and its table)."""
    start = readme.find("\n## Which method?")
    assert start >= 0, "the README no longer has its 'Which method?' section"
    end = readme.find("\n## ", start + 1)
    return readme[start:end if end >= 0 else None]


def test_readme_study_figures_come_from_the_committed_logs():
    """Every "x ± y" the README's study section quotes, and its count of seed pairs, is what `python
    -m reports study` renders from the committed logs today: a log added without the README updated
    (or a figure typed wrong) fails here, not in a reader's hands."""
    from reports.logs import find_runs
    from reports.study import study_settings, to_markdown
    runs, _ = find_runs([REPO / "reports" / "runs"])
    report = to_markdown(study_settings(runs))
    rendered = {(a, b) for a, b in FIGURE.findall(report)}
    text = _study_text((REPO / "README.md").read_text(encoding="utf-8"))
    quoted = FIGURE.findall(text)
    assert quoted, "the README quotes no study figure"
    missing = [f"{a} ± {b}" for a, b in quoted if (a, b) not in rendered and ("+" + a, b) not in rendered]
    assert not missing, f"README study figures not in the rendered report: {missing}"
    pairs = {int(n) for n in re.findall(r"(\d+)\s+seed pairs", text)}
    paired_n = {int(n) for n in re.findall(r"\| Self-KD \| [^|]+ \| [^|]+ \| [^|]+ \(n = (\d+)\)", report)}
    assert pairs <= paired_n, f"README says {pairs} seed pairs; the report pairs Self-KD at n = {paired_n}"
