"""docs/syllabus.md (the book's index page) as a plan an instructor can adopt (issue 21, lecture materials): a
week-by-week table that places every notebook and the three assignments, a reading list whose entries each carry
a link, and a menu of final projects that each name a question, the kit's entry points and a measurable outcome."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import course as _course

REPO = Path(__file__).resolve().parents[1]
SYLLABUS = REPO / "docs" / "syllabus.md"


def _section(title: str) -> str:
    text = SYLLABUS.read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(title)}.*?\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"docs/syllabus.md has no section '## {title}'"
    return m.group(1)


def test_every_notebook_and_assignment_has_a_week():
    plan = _section("Week by week")
    rows = [ln for ln in plan.splitlines() if re.match(r"^\|\s*\d+\s*\|", ln)]
    weeks = [int(ln.split("|")[1]) for ln in rows]
    assert 6 <= len(weeks) <= 7 and weeks == list(range(1, len(weeks) + 1)), weeks
    taught = {int(n) for ln in rows for n in re.findall(r"notebook (\d+)", ln.split("|")[2])}
    lessons = {int(p.name[:2]) for p in _course.lessons(REPO / "notebooks")}
    assert lessons <= taught, f"notebooks without a week: {sorted(lessons - taught)}"
    for n in (1, 2, 3):
        assert f"assignment {n} out" in plan and f"assignment {n} due" in plan, n
    assert "make slides" in plan


@pytest.mark.parametrize("author", ["Eckart", "Denton", "Han", "Zhu", "Blalock", "Hsu", "Yuan", "Wang", "Papyan",
                                    "Thakker"])
def test_reading_list_links_each_paper(author):
    items = re.split(r"\n(?=\d+\. )", _section("Reading list"))
    entry = [it for it in items if re.match(r"\d+\. ", it) and author in it.split("*")[0]]
    assert len(entry) == 1, f"one reading-list entry by {author}, found {len(entry)}"
    assert re.search(r"\]\(https://(arxiv\.org/abs/\d{4}\.\d{4,5}|aclanthology\.org/[\w.-]+|doi\.org/10\.[\w./]+)\)",
                     entry[0]), entry[0]


def test_final_projects_name_a_question_entry_points_and_an_outcome():
    items = [it for it in re.split(r"\n(?=\d+\. \*\*)", _section("Final projects")) if re.match(r"\d+\. \*\*", it)]
    assert 8 <= len(items) <= 10, len(items)
    for it in items:
        assert "*Question:*" in it and "*Entry points:*" in it and "*Outcome:*" in it, it[:80]
        assert re.search(r"`(hl\.|hmf-lab |grid\.)", it), f"no kit entry point named: {it[:80]}"
