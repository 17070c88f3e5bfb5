"""The README and docs/ cannot drift from the benchmark.

Every figure they show is either generated from the committed summary.json (the README's block between
benchmarks.readme.MARKERS, which must equal what benchmarks.readme would write today) or found verbatim in
benchmarks/results/REPORT.md or summary.json, or is one of the few non-measurements listed in ALLOWED. The other
reports (`make heldout`, `make seeds`, `make foresight`, `make kernels`) are linked, not quoted. The snippets are
checked against the examples by tests/test_integrations.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from benchmarks import readme

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
PAGES = ("how-it-works", "arguments", "integrations", "race", "foresight", "reference-loops", "setup")
MAX_README_LINES = 250
FIRST_SCREEN = 15  #: lines: the goal tally must stand within them
MAX_GOALS = 12  #: the scoreboard's goals, the real model's and the race's together
REFRESH = 'python -c "from benchmarks.report import refresh_readme; refresh_readme()"'

#: A figure: a speed-up (2.90x, 30x), a percentage (15%, 0.5%) or a decimal (3.50, 0.992), not inside a word or a
#: longer number (AVX512, x86, 1e-5, 2605.11739 are not figures here: arXiv numbers are dropped before the scan).
FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?[x%](?!\w)|(?<![\w.])\d+(?:\.\d+)+(?!\w)")

#: Numbers in the prose that are not measurements, each with why it may stand there.
ALLOWED = {
    "3.10": "the oldest Python supported (pyproject.toml's requires-python)",
    "0.15": "ProbeBudget's default share (effopt/budget.py)",
    "1.0": "Prodigy's untuned settings in the race, lr=1.0 and d_coef=1.0 (reference/optimizers.py)",
}


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose(text: str) -> str:
    """`text` without what the figure check does not read: the generated block, fenced code (the snippets are checked
    against the examples), HTML comments, link targets, URLs and arXiv numbers."""
    start, end = readme.MARKERS
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), "", text, flags=re.DOTALL)
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"https?://\S+", "", text)
    return re.sub(r"arXiv\s+\d+\.\d+", "arXiv", text)


def sources() -> str:
    """The benchmark's reports (the race's, the real model's, the kernels', ...) and summaries, as text."""
    return "\n".join(
        path.read_text() for pattern in ("*.md", "summary.json") for path in sorted(RESULTS.rglob(pattern))
    )


def test_the_readme_is_short_and_the_rest_is_in_docs():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines, at most {MAX_README_LINES}"
    for page in PAGES:
        assert (DOCS / f"{page}.md").is_file(), f"docs/{page}.md is missing"
        assert f"](docs/{page}.md" in README.read_text(), f"README.md does not link docs/{page}.md"
    assert "make bench" in README.read_text() and "make test" in README.read_text()


def test_every_relative_link_resolves():
    for page in pages():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links {target}, which does not exist"


def test_every_figure_in_the_prose_is_in_a_report_or_allowed():
    haystack = sources()
    missing = []
    for page in pages():
        for figure in sorted(set(FIGURE.findall(prose(page.read_text())))):
            if figure in ALLOWED:
                continue
            if not re.search(rf"(?<![\d.]){re.escape(figure)}(?!\d)", haystack):
                missing.append(f"{page.relative_to(ROOT)}: {figure}")
    assert not missing, (
        "figures found in no benchmark report (quote the report word for word, point to it instead, or list a "
        f"non-measurement in ALLOWED): {missing}"
    )


def test_allowed_numbers_are_used():
    text = "".join(prose(page.read_text()) for page in pages())
    assert all(number in FIGURE.findall(text) for number in ALLOWED), "ALLOWED lists a number no page uses"


def test_the_readme_block_is_what_the_report_writes_today(tmp_path):
    copy = tmp_path / "README.md"
    shutil.copy(README, copy)
    readme.refresh_readme(readme=copy, results=RESULTS)
    assert copy.read_text() == README.read_text(), f"README.md's results block is stale: run `{REFRESH}`"


def verdicts(report_md: Path) -> tuple[int, int, int]:
    """(met, not met, not run) in a report's goals table."""
    goals = report_md.read_text().split("## Goals", 1)[1].split("\n## ", 1)[0]
    rows = [row.split(" | ")[-2] for row in goals.splitlines() if row.startswith("| ") and " | " in row][1:]
    assert len(rows) == rows.count("yes") + rows.count("NO") + rows.count("not run")
    return rows.count("yes"), rows.count("NO"), rows.count("not run")


def test_the_goal_tally_is_on_the_first_screen_and_is_the_reports():
    first = README.read_text().splitlines()[:FIRST_SCREEN]
    tally = next((line for line in first if line.startswith("**Goals: ")), None)
    assert tally, f"no goal tally in README.md's first {FIRST_SCREEN} lines"
    met, not_met = map(int, re.match(r"\*\*Goals: (\d+) met, (\d+) not met\*\*", tally).groups())
    assert "not run" not in tally and met + not_met <= MAX_GOALS
    reports = [verdicts(RESULTS / "REPORT.md"), verdicts(RESULTS / "real" / "REPORT.md")]
    assert all(not_run == 0 for _, _, not_run in reports)  # a goal the run cannot check is the full mode's
    assert (met, not_met) == (sum(r[0] for r in reports), sum(r[1] for r in reports))
    board = README.read_text().split(tally, 1)[1].split("\n\n", 2)[1].splitlines()
    assert len(board) == 2 + met + not_met, "the goals' table follows the tally, one row a goal"
