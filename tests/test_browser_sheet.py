"""The つなぐシート on paper, printed by Chromium to an A4 PDF as a receiving department prints it: an ordinary
case on one page with a 受理欄 wide enough to write in by hand, a long case on two with its heading on both,
and the sending department's contact on the sheet.

The PDFs and a screenshot of each sheet as printed go to test-output/sheets/ for a person to look at.
"""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import Case, Handoff
from engine.settings import PROJECT_ROOT
from tests.test_browser import Person, browser, server  # noqa: F401  (fixtures)

OUT = PROJECT_ROOT / "test-output" / "sheets"
MM = 72 / 25.4  # PDF points in a millimetre
PX = 96 / 25.4  # CSS pixels in a millimetre
PRINTED_WIDTH = round(186 * PX)  # A4's 210 mm less the sheet's margins of 12 mm

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _print(person: Person, server_url: str, handoff_id: int, name: str) -> PdfReader:
    person.page.goto(f"{server_url}/handoffs/{handoff_id}/sheet")
    OUT.mkdir(parents=True, exist_ok=True)
    person.page.screenshot(path=str(OUT / f"{name}-screen.png"), full_page=True)
    pdf = person.page.pdf(format="A4")
    (OUT / f"{name}.pdf").write_bytes(pdf)
    # The sheet as printed, laid out as wide as the paper takes it, for the eye and for measuring.
    person.page.emulate_media(media="print")
    person.page.set_viewport_size({"width": PRINTED_WIDTH, "height": round(273 * PX)})
    person.page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    return PdfReader(io.BytesIO(pdf))


def _handoff(sessions, case_id: int) -> tuple[int, str]:
    with unit_of_work(sessions) as s:
        number = s.get(Case, case_id).case_number
        return s.scalar(select(Handoff.id).where(Handoff.case_id == case_id)), number


def _a4_portrait(reader: PdfReader) -> None:
    for page in reader.pages:
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        assert (round(width / MM), round(height / MM)) == (210, 297)


def test_an_ordinary_case_prints_on_one_a4_page_with_a_receipt_to_fill_in(browser, server, actors, open_case,
                                                                          sessions):
    case_id = open_case(categories=["poverty"], household=[{"relationship": "長男", "birth_year": 1990}],
                        summary="失職して家賃と公共料金を滞納している。長男と二人暮らし。")
    handoff_id, number = _handoff(sessions, case_id)
    livelihood = Person(browser, server, "livelihood")
    reader = _print(livelihood, server, handoff_id, "sheet-ordinary")
    _a4_portrait(reader)
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    assert "受理欄" in text and number in text
    # Who sent it and how to reach them: the sending member of staff and their department.
    assert actors.window.display_name in text and "相談まるごとサポートデスク" in text

    # The 受理欄 by hand: each blank is wide and tall enough for a name, a date, a note written with a pen.
    for label, width_mm, height_mm in (("受理日", 45, 10), ("担当者", 45, 10), ("電話", 45, 10), ("メモ", 120, 20)):
        box = livelihood.page.locator(f".sheet-receipt td[data-blank='{label}']").bounding_box(timeout=5000)
        assert box["width"] >= width_mm * PX and box["height"] >= height_mm * PX, (label, box)
    livelihood.close()


def test_a_long_case_flows_onto_a_second_page_under_the_same_heading(browser, server, actors, open_case, sessions):
    household = [{"relationship": rel, "name": f"廿日 {given}", "birth_year": 1950 + i * 7,
                  "note": "同居。日中は在宅していることが多い。" * 2}
                 for i, (rel, given) in enumerate([("父", "一郎"), ("母", "春子"), ("長男", "二郎"), ("長女", "夏子"),
                                                   ("次男", "三郎"), ("次女", "秋子"), ("孫", "冬子"), ("孫", "四郎")])]
    summary = ("失職して家賃と公共料金を滞納している。父の介護と長男のひきこもりが重なり、家族だけでは抱えきれない。"
               "近所との付き合いも途絶え、相談できる人がいないと話す。\n") * 12
    case_id = open_case(categories=["poverty"], household=household, summary=summary)
    handoff_id, number = _handoff(sessions, case_id)
    livelihood = Person(browser, server, "livelihood")
    reader = _print(livelihood, server, handoff_id, "sheet-long")
    _a4_portrait(reader)
    assert len(reader.pages) == 2
    for page in reader.pages:
        text = page.extract_text()
        assert "つなぐシート" in text and number in text, text[:200]
    assert "受理欄" in reader.pages[1].extract_text()
    livelihood.close()
