"""The pages on a 1366 px wide screen, as most of the city's PCs have: a long name or a long unbroken text wraps
inside its cell and the page keeps to the window, the FM's menu stays on one line and a case number is never
broken. Screenshots go to test-output/screenshots/ (tests/test_browser.py)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from engine.alerts import scan
from engine.models import utcnow
from tests.pages_support import case_in  # noqa: F401  (fixture)
from tests.test_browser import SHOTS, Person, browser, server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDE = {"width": 1366, "height": 768}
LONG_NAME = "廿日市" * 33 + "子"  # 100 characters, the most a name may hold
LONG_KANA = "ハツカイチ" * 20
UNBROKEN = "A" * 100
LONG_NOTE = "本人宅を訪問し、家計の状況を聞き取った。" * 500  # 10,000 characters  # a name in Latin letters with no space to wrap at

WIDTHS = """() => ({page: document.documentElement.scrollWidth, window: document.documentElement.clientWidth,
    right: Math.max(...[...document.querySelectorAll('table.cases th')].map(e => e.getBoundingClientRect().right))})"""
# Every case number on the page, with the number of lines it takes.
CASE_NUMBERS = r"""() => [...document.querySelectorAll('main *')]
    .filter(e => e.children.length === 0 && /^(ケース )?R\d{1,2}-\d{6}$/.test(e.textContent.trim()))
    .map(e => [e.textContent.trim(), e.getClientRects().length,
               Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight))])"""
MENU_LINES = """() => new Set([...document.querySelectorAll('header.site nav li')]
    .map(e => Math.round(e.getBoundingClientRect().top))).size"""


def at_1366(browser, server, login: str) -> Person:  # noqa: F811
    person = Person(browser, server, login)
    person.page.set_viewport_size(WIDE)
    person.page.reload()
    return person


def fits(person: Person) -> None:
    """The page is no wider than the window and the list's last column is on screen."""
    widths = person.page.evaluate(WIDTHS)
    assert widths["page"] <= widths["window"] and widths["right"] <= widths["window"], widths


def test_a_long_name_wraps_in_the_lists_at_1366_px(browser, server, actors, open_case):  # noqa: F811
    open_case(person={"name": LONG_NAME, "name_kana": LONG_KANA, "birth_date": "1960-05-01", "area": "廿日市"},
              summary="長い氏名の方の相談。" + "家計" * 200)
    open_case(person={"name": UNBROKEN, "name_kana": "", "birth_date": "1970-01-01", "area": "大野"})
    open_case()
    staff = at_1366(browser, server, "livelihood")
    for path, shot in (("/cases", "30-long-name-list-1366"), ("/", "31-long-name-start-1366")):
        staff.page.goto(server + path)
        assert LONG_NAME in staff.page.locator("table.cases").inner_text()
        assert UNBROKEN in staff.page.locator("table.cases").inner_text()
        fits(staff)
        # 状態, 担当部署 and the dates are on screen on every row.
        for header in ("状態", "担当部署", "受付日", "更新日時"):
            box = staff.page.locator("table.cases th", has_text=header).bounding_box()
            assert box["x"] + box["width"] <= WIDE["width"], header
        # A name wraps at the cell's edge, the other names stay whole on one line.
        rows = staff.page.locator("table.cases tbody tr")
        short = rows.filter(has_text="廿日 太郎").locator("td").nth(2)
        assert short.evaluate("e => e.getClientRects().length") == 1
        staff.shot(shot)
    staff.close()


def test_the_fm_menu_is_one_line_and_case_numbers_stay_whole_at_1366_px(browser, server, actors,  # noqa: F811
                                                                         open_case, sessions):
    # Sheets nobody accepted: the stall scan puts them on the dashboard, where the FM reads their numbers.
    open_case(person={"name": LONG_NAME, "name_kana": LONG_KANA, "birth_date": "1960-05-01", "area": "廿日市"},
              categories=["hikikomori"], now=utcnow() - timedelta(days=21))
    open_case(categories=["hikikomori"], now=utcnow() - timedelta(days=21))
    assert scan.scan(sessions).failed == 0
    fm = at_1366(browser, server, "fm")
    for path, shot in (("/", "32-fm-start-1366"), ("/dashboard", "33-fm-dashboard-1366"),
                       ("/cases", "34-fm-list-1366")):
        fm.page.goto(server + path)
        assert fm.page.evaluate(MENU_LINES) == 1, path
        numbers = fm.page.evaluate(CASE_NUMBERS)
        assert numbers, path
        for text, rects, lines in numbers:
            assert rects == 1 and lines == 1, (path, text)
        assert fm.page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        fm.shot(shot)


def test_limits_are_said_before_sending_and_a_long_note_is_folded(browser, server, case_in):  # noqa: F811
    window = at_1366(browser, server, "window")
    window.page.get_by_role("link", name="相談受付", exact=True).click()
    name = window.page.locator("#in-person-name")
    assert window.page.locator("#in-person-name-hint").inner_text() == "100文字まで"
    assert "4,000文字まで" in window.page.locator("#in-summary-hint").inner_text()
    name.fill("廿" * 120)  # no more than the limit goes in
    assert name.input_value() == "廿" * 100
    window.shot("35-intake-limits-1366")
    window.close()

    case_id = case_in("assigned")
    staff = at_1366(browser, server, "livelihood")
    staff.page.goto(f"{server}/cases/{case_id}")
    staff.page.locator("#notes summary").first.click()
    staff.page.fill("#note-contact_on", "令和8年11月27日")
    staff.page.get_by_label("訪問").check()
    staff.page.fill("#note-body", LONG_NOTE)
    staff.page.locator("#notes").get_by_role("button", name="記録する").click()
    note = staff.page.locator("ol.notes li").first
    assert "全文を表示（10,000文字）" in note.inner_text()
    assert note.bounding_box()["height"] < 300  # a few lines, not a 4,000 px block
    staff.page.locator("#notes").scroll_into_view_if_needed()
    staff.shot("36-long-note-folded-1366")
    note.get_by_text("全文を表示").click()
    assert note.bounding_box()["height"] > 1000 and LONG_NOTE in note.inner_text()
    staff.close()


def test_the_fm_acknowledges_a_row_and_reads_the_message_beside_it(browser, server, actors,  # noqa: F811
                                                                   open_case, sessions):
    # Several sheets nobody accepted, each past its deadline and escalated: one row each.
    for _ in range(4):
        open_case(categories=["hikikomori"], now=utcnow() - timedelta(days=21))
    assert scan.scan(sessions).failed == 0
    fm = at_1366(browser, server, "fm")
    fm.page.goto(server + "/dashboard")
    rows = fm.page.locator("#stalled tbody tr[id^=alert-]")
    assert rows.count() == 4 and fm.page.locator("#stalled tbody tr.also").count() == 4  # both reasons
    last = rows.nth(3)
    assert last.get_by_text("振り替える", exact=True).count() == 1
    last.get_by_role("button", name="確認済みにする").click()
    message = fm.page.locator(".flash")
    assert message.inner_text() == "アラートを確認しました。"
    box = message.bounding_box()
    assert 0 <= box["y"] and box["y"] + box["height"] <= WIDE["height"]  # in view, where the page opened
    seen = fm.page.locator("#stalled .seen")
    assert seen.count() == 2 and all(re.fullmatch(r".+・令和\d+年\d+月\d+日 \d+:\d+", t) for t in seen.all_inner_texts())
    fm.page.screenshot(path=str(SHOTS / "37-dashboard-acknowledged-1366.png"))  # what the FM sees, as seen
    fm.close()
