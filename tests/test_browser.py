"""End to end in a real Chromium against a real server on the test database: a consultation from the
window to closure through the pages alone, a sheet the stall scan escalated acknowledged on the FM dashboard,
an administrator's 開示請求 answer and stop of a user, a user added on the 管理 page who signs in with the
password issued there, a password changed by its user, and a 支援会議 that takes up a household member's case.

A screenshot of each page goes to test-output/screenshots/. Skipped only when /usr/bin/chromium is
missing outside CI; in CI (CI=true) a missing browser fails.
"""
from __future__ import annotations

import io
import os
import re
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from engine import calendar
from engine.alerts import scan
from engine.db import unit_of_work
from engine.models import Alert, Case, ContactNote, Handoff, utcnow
from engine.reports import yearly as reports
from engine.settings import PROJECT_ROOT
from tests.conftest import PASSWORD
from tests.household_support import household  # noqa: F401  (fixture)

CHROMIUM = "/usr/bin/chromium"
SHOTS = PROJECT_ROOT / "test-output" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: the browser tests must run in CI")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(pages_app):
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, pages_app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(10)


class Person:
    """One signed-in member of staff in a browser context of their own."""

    def __init__(self, browser, base: str, login: str):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
        self.page = self.context.new_page()
        self.problems: list[str] = []
        # Errors in the console (a CSP violation, a missing asset) are problems; a form answered 422 or 409
        # (refused on purpose) is not.
        self.page.on("console", lambda m: self.problems.append(m.text)
                     if m.type == "error" and not ("status of 422" in m.text or "status of 409" in m.text) else None)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.goto(base + "/login")
        # By keyboard alone: the ID field has the focus, Tab to the password, Enter to sign in.
        self.page.wait_for_function("document.activeElement && document.activeElement.id === 'login'")
        self.page.keyboard.type(login)
        self.page.keyboard.press("Tab")
        self.page.keyboard.type(PASSWORD)
        assert (self.page.input_value("#login"), self.page.input_value("#password")) == (login, PASSWORD)
        self.page.keyboard.press("Enter")
        self.page.wait_for_url(base + "/")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def state(self) -> str:
        return self.page.locator(".case-head h1 .state").inner_text()

    def flash(self) -> str:
        return self.page.locator(".flash").inner_text()

    def open_event(self, event: str):
        """Open an event's form with the keyboard (focus its summary, Enter) and return the form."""
        summary = self.page.locator(f"#event-{event} > summary")
        summary.focus()
        self.page.keyboard.press("Enter")
        return self.page.locator(f"#event-{event} form")

    def close(self) -> None:
        assert self.problems == [], self.problems  # no CSP violation, no script error
        self.context.close()


def test_a_consultation_from_the_window_to_closure_through_the_pages(browser, server, actors, sessions):
    future = calendar.wareki(max(date.today(), date(2026, 11, 30)) + timedelta(days=60))

    # 1. Window staff record the consultation and see the proposal before sending.
    window = Person(browser, server, "window")
    window.shot("00-start")
    window.page.get_by_role("link", name="相談受付", exact=True).click()
    p = window.page
    p.fill("#in-person-name", "廿日 花子")
    p.fill("#in-person-name_kana", "ハツカ ハナコ")
    p.fill("#in-person-birth_date", "昭和37年4月3日")
    p.select_option("#in-person-area", "廿日市")
    p.fill("#in-household-0-relationship", "長男")
    p.fill("#in-household-0-birth_year", "1990")
    p.get_by_label("生活困窮", exact=True).check()
    p.get_by_label("借金・滞納").check()
    p.fill("#in-summary", "失職して家賃と公共料金を滞納している。長男と二人暮らし。")
    window.shot("01-intake-form")
    p.get_by_role("button", name="振り分けを確認する").click()
    assert "送付先: 生活福祉課（生活困窮者自立相談支援）" in p.locator(".proposal").inner_text()
    assert "生活困窮・借金・仕事・住まいの相談のため" in p.locator(".proposal").inner_text()
    window.shot("02-intake-preview")
    p.get_by_role("button", name="生活福祉課（生活困窮者自立相談支援）へ送る").click()
    assert "相談を受け付けました" in window.flash()
    assert window.state() == "つなぐシート送付中"
    case_url = p.url
    window.shot("03-case-sent")
    window.page.goto(server + "/cases?q=ﾊﾂｶ")
    assert "廿日 花子" in window.page.locator("table.cases").inner_text()
    window.shot("04-case-list")

    # 2. The receiving department accepts it from its inbox.
    livelihood = Person(browser, server, "livelihood")
    livelihood.page.get_by_role("link", name="部署の受信箱", exact=True).click()
    item = livelihood.page.locator("article.inbox-item", has_text="廿日 花子")
    assert "営業日経過" in item.inner_text()
    livelihood.shot("05-inbox")
    item.get_by_role("link", name="つなぐシートを印刷").click()
    livelihood.page.emulate_media(media="print")
    assert "受理欄" in livelihood.page.locator("article.sheet").inner_text()
    livelihood.shot("06-sheet-print")
    livelihood.page.emulate_media(media="screen")
    livelihood.page.go_back()
    livelihood.page.locator("article.inbox-item", has_text="廿日 花子").get_by_role("button", name="受理する").click()
    assert "つなぐシートを受理しました" in livelihood.flash()
    livelihood.page.locator(".flash").get_by_role("link", name=re.compile("^ケース .* を開く$")).click()
    assert livelihood.page.url == case_url
    assert livelihood.state() == "担当決定"

    # 3. The FM convenes a 支援会議 with the department, whose 守秘義務 acknowledgement is recorded.
    fm = Person(browser, server, "fm")
    fm.page.goto(case_url)
    form = fm.open_event("convene_support_meeting")
    form.locator("#ev-convene_support_meeting-members-0-user").select_option("livelihood")
    form.get_by_label("説明し、確認を得た").first.check()
    form.locator("#ev-convene_support_meeting-minutes").fill("家計の状況と長男の就労について共有した。")
    form.locator("#ev-convene_support_meeting-decisions").fill("本人の同意を得て重層的支援会議へ。")
    held = form.locator("#ev-convene_support_meeting-held_at")  # typed in 和暦 like every other date
    assert held.get_attribute("type") == "text"
    assert re.fullmatch(r"令和\d+年\d+月\d+日 \d\d:\d\d", held.input_value())
    fm.shot("07-convene-form")
    form.get_by_role("button", name="支援会議を開く").click()
    assert fm.state() == "支援会議"
    fm.page.get_by_role("link", name="支援会議").first.click()
    assert "家計の状況と長男の就労について共有した。" in fm.page.locator("main").inner_text()
    fm.shot("08-support-meeting")
    fm.page.goto(case_url)

    # 4. Consent is recorded, covering the two agencies of the plan.
    form = fm.open_event("record_consent")
    form.get_by_label("書面").check()
    form.get_by_label("生活福祉課（生活困窮者自立相談支援）").check()
    form.get_by_label("廿日市市社会福祉協議会（生活支援コーディネーター）").check()
    form.get_by_role("button", name="同意を記録する").click()
    assert fm.state() == "重層的支援会議"

    # 5. The plan is adopted (first with a mistake, marked beside its field and kept as typed).
    form = fm.open_event("adopt_plan")
    form.locator("#ev-adopt_plan-goals").fill("「家賃を払い続けられるようにしたい」")
    form.locator("#ev-adopt_plan-roles-0-department").select_option("livelihood")
    form.locator("#ev-adopt_plan-roles-0-role").fill("家計改善支援")
    form.locator("#ev-adopt_plan-roles-1-department").select_option("shakyo")
    form.locator("#ev-adopt_plan-roles-1-role").fill("長男の居場所の紹介")
    form.locator("#ev-adopt_plan-main_department").select_option("livelihood")
    form.locator("#ev-adopt_plan-next_evaluation_date").fill("来月")
    form.get_by_role("button", name="支援プランを決定する").click()
    assert "日付は" in fm.page.locator("#ev-adopt_plan-next_evaluation_date-error").inner_text()
    assert fm.page.locator("#ev-adopt_plan-roles-1-role").input_value() == "長男の居場所の紹介"
    fm.shot("09-plan-error")
    fm.page.fill("#ev-adopt_plan-next_evaluation_date", future)
    attendees = fm.page.locator("#ev-adopt_plan-attendees")
    attendees.get_by_label("生活福祉課（生活困窮者自立相談支援）").check()
    attendees.get_by_label("廿日市市社会福祉協議会（生活支援コーディネーター）").check()
    fm.page.locator("#event-adopt_plan").get_by_role("button", name="支援プランを決定する").click()
    assert fm.state() == "伴走支援"
    assert "長男の居場所の紹介" in fm.page.locator("#plan").inner_text()
    meetings = fm.page.locator("#meetings").inner_text()
    assert "出席機関: " in meetings and "廿日市市社会福祉協議会" in meetings and "支援プラン第1版を決定" in meetings
    fm.shot("10-case-plan")
    fm.page.locator("#meetings").get_by_role("link", name=re.compile("^重層的支援会議")).click()
    record = fm.page.locator("#layered-record").inner_text()
    assert "生活福祉課" in record and "廿日市市社会福祉協議会" in record and "第1版" in record
    fm.shot("10b-layered-meeting")
    fm.page.goto(case_url)

    # 6. An evaluation is recorded by the department that owns the plan.
    livelihood.page.goto(case_url)
    form = livelihood.open_event("evaluate")
    form.get_by_label("一部達成").check()
    form.locator("#ev-evaluate-changes").fill("家賃の分納が始まった。長男が週1回居場所に通っている。")
    form.get_by_role("radio", name="継続").check()
    form.locator("#ev-evaluate-next_evaluation_date").fill(future)
    form.get_by_role("button", name="評価を記録する").click()
    assert livelihood.state() == "伴走支援"
    assert "家賃の分納が始まった。" in livelihood.page.locator("#plan").inner_text()

    # 7. The case is closed with a reason.
    form = livelihood.open_event("close")
    form.locator("#ev-close-close_reason").select_option("goal_met")
    form.get_by_role("button", name="終結する").click()  # not yet: the 確認 box is not ticked
    assert "終結してよいか確かめて" in livelihood.page.locator("#ev-close-confirm-error").inner_text()
    assert livelihood.state() == "伴走支援"
    form = livelihood.page.locator("#event-close form")
    assert form.locator("#ev-close-close_reason").input_value() == "goal_met"
    form.get_by_label("このケースを終結してよいことを確認しました").check()
    form.get_by_role("button", name="終結する").click()
    assert livelihood.state() == "終結"
    assert livelihood.flash() == "ケースを終結しました。"
    assert "（目標達成）" in livelihood.page.locator(".case-head").inner_text()
    livelihood.shot("11-case-closed")

    with unit_of_work(sessions) as s:
        case = s.scalars(select(Case)).one()
        assert (case.state, case.close_reason) == ("closed", "goal_met")
        assert [h.event for h in case.history if not h.event.startswith("handoff.")] == [
            "open", "send_handoff", "accept_handoff", "convene_support_meeting", "record_consent", "adopt_plan",
            "evaluate", "close"]
    for person in (window, livelihood, fm):
        person.close()


def test_a_stalled_sheet_is_acknowledged_on_the_fm_dashboard(browser, server, actors, open_case, sessions):
    case_id = open_case(categories=["hikikomori"], now=utcnow() - timedelta(days=21))
    # The stall scan, as cron runs it, finds the sheet nobody accepted and escalates it to the FM.
    result = scan.scan(sessions)
    with unit_of_work(sessions) as s:
        alert_id = s.scalar(select(Alert.id).where(Alert.case_id == case_id, Alert.kind == "handoff_escalated"))
    assert alert_id is not None and result.failed == 0
    fm = Person(browser, server, "fm")
    fm.page.get_by_role("navigation").get_by_role("link", name="FMダッシュボード").click()
    row = fm.page.locator(f"#alert-{alert_id}")
    assert "はつかいちひきこもり支援ステーション" in row.inner_text() and "営業日" in row.inner_text()
    assert "未対応" in row.inner_text()
    fm.shot("12-dashboard")
    row.get_by_role("button", name="確認済みにする").click()
    assert "アラートを確認しました" in fm.flash()
    assert "確認済み" in fm.page.locator(f"#alert-{alert_id}").inner_text()
    fm.shot("13-dashboard-acknowledged")
    with unit_of_work(sessions) as s:
        assert s.get(Alert, alert_id).status == "acknowledged"
    fm.close()


def test_an_fm_reads_a_years_figures_and_saves_them_as_csv_and_xlsx(browser, server, actors, open_case):
    open_case(categories=["poverty"])
    fm = Person(browser, server, "fm")
    fm.page.get_by_role("navigation").get_by_role("link", name="年度集計").click()
    this_year = calendar.fiscal_year(utcnow().astimezone(calendar.JST).date())
    label = f"令和{calendar.reiwa_year(this_year)}年度"
    assert fm.page.locator("h1").inner_text() == f"年度集計（{label}）"
    row = fm.page.locator("section", has=fm.page.get_by_role("heading", name="相談受付")).get_by_role(
        "row", name="新規相談 計")
    assert row.inner_text().split() == ["新規相談", "計", "1"]
    fm.shot("16-reports")
    fm.page.select_option("#report-year", str(this_year - 1))
    fm.page.get_by_role("button", name="表示").click()
    assert fm.page.locator("h1").inner_text().startswith("年度集計（令和")
    assert fm.page.get_by_role("row", name="新規相談 計").first.inner_text().split()[-1] == "0"
    with fm.page.expect_download() as download:
        fm.page.get_by_role("link", name="CSVで保存").click()
    saved = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert saved.splitlines()[0] == "年度,区分,項目,件数"
    with fm.page.expect_download() as download:
        fm.page.get_by_role("link", name="Excel（xlsx）で保存").click()
    assert download.value.suggested_filename == f"年度集計_{reports.fiscal_year_label(this_year - 1)}.xlsx"
    book = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert book["年度集計"]["A1"].value == f"年度集計（{reports.fiscal_year_label(this_year - 1)}）"
    fm.close()


def test_an_admin_answers_a_disclosure_request_and_stops_a_user(browser, server, actors, open_case, sessions):
    case_id = open_case(categories=["poverty"])
    with unit_of_work(sessions) as s:
        number = s.get(Case, case_id).case_number
    livelihood = Person(browser, server, "livelihood")
    livelihood.page.goto(f"{server}/cases/{case_id}")  # a read that the trail must show
    admin = Person(browser, server, "admin")
    admin.page.get_by_role("navigation").get_by_role("link", name="管理").click()
    admin.shot("14-admin")
    admin.page.get_by_label("ケース番号").fill(number)
    admin.page.get_by_role("button", name="閲覧記録を表示").click()
    table = admin.page.locator("main table").inner_text()
    assert "livelihood" in table and "ケース記録の閲覧" in table and "令和" in table and "実施" in table
    admin.shot("15-disclosure")
    admin.page.goto(f"{server}/admin/")
    row = admin.page.locator("#users tbody tr").filter(
        has=admin.page.get_by_role("button", name="livelihood を停止"))
    assert "有効" in row.inner_text()
    row.get_by_role("button", name="livelihood を停止").click()
    # Asked first, on a page of its own; やめる leaves the user as they were.
    assert "を停止しますか" in admin.page.locator("h1").inner_text()
    admin.page.get_by_role("link", name="やめる（管理に戻る）").click()
    livelihood.page.reload()
    assert "/login" not in livelihood.page.url
    admin.page.get_by_role("button", name="livelihood を停止").click()
    admin.page.get_by_role("button", name="停止する", exact=True).click()
    assert "停止しました" in admin.flash()
    # The stopped user's open page is signed out on the next request.
    livelihood.page.goto(f"{server}/cases/{case_id}")
    assert "/login" in livelihood.page.url
    admin.close()
    livelihood.close()


def test_another_department_is_asked_to_join_and_accepts_from_its_inbox(browser, server, actors, open_case, fire,
                                                                       sessions):
    """社協 is a partner outside the city: asked to join without a basis, the page says what is missing; once
    the person's consent names it, the request goes, and 社協 accepts it from its inbox."""
    case_id = open_case(categories=["poverty"], person={"name": "佐伯 一郎", "name_kana": "サエキ イチロウ",
                                                        "birth_date": "1979-03-02", "area": "佐伯"})
    fire(actors.livelihood, case_id, "accept_handoff")
    livelihood = Person(browser, server, "livelihood")
    livelihood.page.goto(f"{server}/cases/{case_id}")
    form = livelihood.open_event("request_join")
    form.locator("#join-to_department").select_option("shakyo")
    form.locator("#join-reason").fill("日中の居場所づくりをお願いしたい。")
    form.get_by_role("button", name="参加を依頼する").click()
    refusal = livelihood.page.locator("#join-to_department-error").inner_text()
    assert "市の外の機関" in refusal and "本人の同意が記録されていません" in refusal
    assert livelihood.page.locator("#join-reason").input_value() == "日中の居場所づくりをお願いしたい。"
    livelihood.shot("16-join-needs-a-basis")

    form = livelihood.open_event("record_consent")
    form.get_by_label("書面").check()
    form.get_by_label("生活福祉課（生活困窮者自立相談支援）").check()
    form.get_by_label("廿日市市社会福祉協議会（生活支援コーディネーター）").check()
    form.get_by_role("button", name="同意を記録する").click()
    assert livelihood.state() == "重層的支援会議"

    form = livelihood.open_event("request_join")
    form.locator("#join-to_department").select_option("shakyo")
    form.locator("#join-reason").fill("日中の居場所づくりをお願いしたい。")
    form.get_by_role("button", name="参加を依頼する").click()
    assert "参加を依頼しました" in livelihood.flash()
    assert livelihood.state() == "重層的支援会議"  # the case does not move
    assert "参加依頼" in livelihood.page.locator("#handoffs").inner_text()
    provided = livelihood.page.locator("#provisions").inner_text()
    assert "廿日市市社会福祉協議会" in provided and "本人の同意" in provided
    livelihood.shot("16-join-provision")

    shakyo = Person(browser, server, "shakyo")
    shakyo.page.get_by_role("navigation").get_by_role("link", name="部署の受信箱").click()
    item = shakyo.page.locator("article.inbox-item", has_text="佐伯 一郎")
    assert "日中の居場所づくりをお願いしたい。" in item.inner_text()
    shakyo.shot("17-join-inbox")
    item.get_by_role("button", name="受理する").click()
    assert "受理しました" in shakyo.flash()

    livelihood.page.reload()
    assert "受理" in livelihood.page.locator("#handoffs tbody tr", has_text="参加依頼").inner_text()
    with unit_of_work(sessions) as s:
        joins = s.scalars(select(Handoff).where(Handoff.case_id == case_id, Handoff.primary.is_(False))).all()
        assert [(h.to_department.code, h.state) for h in joins] == [("shakyo", "accepted")]
    for person in (livelihood, shakyo):
        person.close()


def test_a_notified_department_acknowledges_and_the_owner_corrects_the_details(browser, server, actors, open_case,
                                                                              sessions):
    # 8050: 高齢介護課 owns the case; the rules also tell the ひきこもり支援ステーション.
    case_id = open_case(categories=["elder_care", "hikikomori"], person={
        "name": "吉和 花子", "name_kana": "ヨシワ ハナコ", "birth_date": "1944-07-07", "area": "吉和"})
    with unit_of_work(sessions) as s:
        number = s.get(Case, case_id).case_number
    station = Person(browser, server, "hikikomori")
    station.page.get_by_role("navigation").get_by_role("link", name="部署の受信箱").click()
    row = station.page.locator("#dept-notices").locator("..").locator("tr", has_text=number)
    assert "高齢介護課" in row.inner_text() and "吉和 花子" not in station.page.content()
    station.shot("18-notice-inbox")
    row.get_by_role("button", name="確認済みにする").click()
    assert "通知を確認しました" in station.flash()
    station.page.goto(f"{server}/cases/{case_id}")
    assert "閲覧できません" in station.page.locator("#metadata-only").inner_text()
    assert "確認" in station.page.locator("#case-notices").inner_text()

    elderly = Person(browser, server, "elderly")
    elderly.page.goto(f"{server}/cases/{case_id}")
    elderly.open_event("accept_handoff").get_by_role("button").click()
    assert elderly.state() == "担当決定"
    form = elderly.open_event("amend")
    assert form.locator("#amend-person-birth_date").input_value() == "昭和19年7月7日"
    form.locator("#amend-person-phone").fill("0829-77-0000")
    elderly.shot("19-amend-form")
    form.get_by_role("button", name="修正を保存する").click()
    assert "内容を修正しました" in elderly.flash()
    assert "0829-77-0000" in elderly.page.locator("#person").inner_text()
    for person in (station, elderly):
        person.close()


def test_a_notified_department_offers_to_join_and_the_owner_asks_it(browser, server, actors, open_case, fire,
                                                                    sessions):
    case_id = open_case(categories=["elder_care", "hikikomori"], person={
        "name": "大野 正男", "name_kana": "オオノ マサオ", "birth_date": "1943-02-11", "area": "大野"})
    fire(actors.elderly, case_id, "accept_handoff")
    with unit_of_work(sessions) as s:
        number = s.get(Case, case_id).case_number
    station = Person(browser, server, "hikikomori")
    station.page.goto(f"{server}/cases/{case_id}")
    form = station.open_event("offer_join")
    form.locator("#offer-message").fill("長男さんへの訪問支援を当ステーションで行えます。")
    station.shot("20-offer-form")
    form.get_by_role("button", name="参加を申し出る").click()
    assert "参加を申し出ました" in station.flash()
    assert "回答待ち" in station.page.locator("#offers").inner_text()
    assert "大野 正男" not in station.page.content()  # still the metadata only

    elderly = Person(browser, server, "elderly")
    elderly.page.get_by_role("navigation").get_by_role("link", name="部署の受信箱").click()
    row = elderly.page.locator("tr", has_text=number).filter(has_text="訪問支援")
    row.get_by_role("link", name="ケースを開いて回答する").click()
    offer = elderly.page.locator("#offers li", has_text="ひきこもり支援ステーション")
    offer.get_by_label("参加を依頼する（参加依頼のつなぐシートを送る）").check()
    elderly.shot("21-offer-answer")
    offer.get_by_role("button", name="回答する").click()
    assert "参加を依頼しました" in elderly.flash()
    assert "参加を依頼済み" in elderly.page.locator("#offers").inner_text()

    station.page.get_by_role("navigation").get_by_role("link", name="部署の受信箱").click()
    item = station.page.locator("article.inbox-item", has_text=number)
    assert "参加の申し出を受けて" in item.inner_text()
    item.get_by_role("button", name="受理する").click()
    assert "受理しました" in station.flash()
    station.page.goto(f"{server}/cases/{case_id}")
    assert "大野 正男" in station.page.locator("#person").inner_text()  # joined: now it reads the case
    for person in (station, elderly):
        person.close()


def test_a_user_changes_their_password_and_their_other_browser_is_signed_out(browser, server, actors):
    other = Person(browser, server, "window")
    me = Person(browser, server, "window")
    me.page.get_by_role("link", name="パスワード変更").click()
    me.page.get_by_label("いまのパスワード").fill("not the password")
    me.page.locator("#pw-new_password").fill("short")
    me.page.get_by_role("button", name="変更する").click()
    summary = me.page.locator(".error-summary").inner_text()
    assert "いまのパスワードが違います" in summary and "10文字以上" in summary
    assert me.page.input_value("#pw-current_password") == ""  # nothing typed is sent back
    me.shot("20-password-refused")
    new = "a brand new passphrase"
    me.page.get_by_label("いまのパスワード").fill(PASSWORD)
    me.page.locator("#pw-new_password").fill(new)
    me.page.locator("#pw-confirm_password").fill(new)
    me.page.get_by_role("button", name="変更する").click()
    me.page.wait_for_url(server + "/")
    assert "パスワードを変更しました" in me.flash()
    other.page.goto(f"{server}/cases")
    assert "/login" in other.page.url
    other.page.fill("#login", "window")
    other.page.fill("#password", new)
    other.page.keyboard.press("Enter")
    other.page.wait_for_url(server + "/cases")  # back to the page it was on
    me.close()
    other.close()


def test_an_admin_adds_a_user_who_signs_in_with_the_issued_password(browser, server, actors):
    admin = Person(browser, server, "admin")
    admin.page.goto(f"{server}/admin/")
    admin.page.locator("#user-login").fill("tanaka")
    admin.page.locator("#user-name").fill("田中 一郎")
    admin.page.locator("#user-department").select_option("elderly")
    admin.page.get_by_role("button", name="追加する").click()
    issued = admin.page.locator("#issued-password").inner_text()
    assert "田中 一郎（tanaka）を追加しました" in admin.page.locator("h1").inner_text()
    admin.shot("21-user-added")
    newcomer = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = newcomer.new_page()
    page.goto(server + "/login")
    page.fill("#login", "tanaka")
    page.fill("#password", issued)
    page.keyboard.press("Enter")
    # A password the administrator saw is changed first: the start page leads to the change.
    page.wait_for_url(server + "/account/password")
    assert "パスワードを変更してください" in page.locator(".flash").inner_text()
    assert "田中 一郎" in page.locator("header .who").inner_text()
    page.get_by_label("いまのパスワード").fill(issued)
    page.locator("#pw-new_password").fill("tanaka's own passphrase")
    page.locator("#pw-confirm_password").fill("tanaka's own passphrase")
    page.get_by_role("button", name="変更する").click()
    page.wait_for_url(server + "/")
    assert "ケースの状況" in page.locator("h1").inner_text()
    newcomer.close()
    admin.close()


def test_staff_look_up_the_rule_that_routed_a_case(browser, server, actors, open_case):
    case_id = open_case(categories=["poverty"])
    staff = Person(browser, server, "livelihood")
    staff.page.goto(f"{server}/cases/{case_id}")
    staff.page.get_by_role("link", name="第1版").click()
    assert staff.page.locator("h1").inner_text() == "振り分けルール（第1版）"
    chosen = staff.page.locator("tr.chosen")
    assert chosen.count() == 1 and chosen.get_attribute("aria-current") == "true"
    assert chosen.locator("th").inner_text() in staff.page.locator("#chosen-rule").inner_text()
    staff.shot("17-rules")
    staff.close()


def test_a_candidate_is_confirmed_from_the_person_page_and_the_case_files_under_the_known_person(
        browser, server, actors, open_case, sessions):
    known_case = open_case(categories=["poverty"], person={
        "name": "佐伯 花子", "name_kana": "サエキ ハナコ", "birth_date": "1950-01-02", "area": "佐伯"})
    # The same person at another window a month later: a full-width space, no kana; a candidate, never merged.
    newer_case = open_case(categories=["debt"], person={"name": "佐伯　花子", "birth_date": "1950-01-02"})
    with unit_of_work(sessions) as s:
        known, newer = s.get(Case, known_case), s.get(Case, newer_case)
        numbers, known_id, newer_id = (known.case_number, newer.case_number), known.person_id, newer.person_id
    staff = Person(browser, server, "livelihood")
    staff.page.goto(f"{server}/cases/{newer_case}")
    assert "名寄せの候補 1件" in staff.page.locator("#person").inner_text()
    staff.page.get_by_role("link", name="この方の記録（ケース・世帯・名寄せ）").click()
    staff.page.wait_for_url(f"{server}/people/{newer_id}")
    card = staff.page.locator(".candidate")
    assert "サエキ ハナコ" in card.inner_text() and "昭和25年1月2日" in card.inner_text()
    card.get_by_label("メモ（同一人物と判断した根拠など）").fill("電話で本人に住所を確認した")
    staff.shot("22-person-candidate")
    card.get_by_role("button", name="同一人物（記録を1つにする）").click()
    staff.page.wait_for_url(f"{server}/people/{known_id}#candidates")
    assert "同一人物と確認し" in staff.flash()
    cases = staff.page.locator("#cases").inner_text()
    assert numbers[0] in cases and numbers[1] in cases
    staff.shot("23-person-merged")
    # The newer consultation's page now leads to the known person.
    staff.page.goto(f"{server}/cases/{newer_case}")
    assert staff.page.locator("#person-link").get_attribute("href") == f"/people/{known_id}"
    assert "名寄せの候補" not in staff.page.locator("#person").inner_text()
    staff.close()


def test_an_fm_takes_up_the_sons_case_in_his_mothers_support_meeting(browser, server, actors, household, fire):
    # The FM convened the mother's first 支援会議: it reads her household, and so sees her son's case number.
    fire(actors.fm, household.mother, "convene_support_meeting", members=[{"user": "elderly", "acknowledged": True}])
    fm = Person(browser, server, "fm")
    fm.page.goto(f"{server}/cases/{household.mother}")
    form = fm.open_event("convene_support_meeting")
    form.locator("#ev-convene_support_meeting-members-0-user").select_option("livelihood")
    form.get_by_label("説明し、確認を得た").first.check()
    form.get_by_label(household.son_number, exact=False).check()
    fm.shot("18-convene-with-the-sons-case")
    form.get_by_role("button", name="支援会議を開く").click()
    assert "支援会議を開きました。" in fm.flash()
    assert f"併せて検討: {household.son_number}" in fm.page.locator("#meetings").inner_text()
    fm.close()
    # The member reads the son's case, where the meeting held on his mother's case is listed.
    member = Person(browser, server, "livelihood")
    member.page.goto(f"{server}/cases/{household.son}")
    assert f"ケース {household.mother_number} の会議で併せて検討" in member.page.locator("#meetings").inner_text()
    member.shot("19-the-sons-case-lists-the-meeting")
    member.close()


def test_a_member_added_to_a_support_meeting_finds_it_in_the_inbox(browser, server, actors, open_case, fire):
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff", now=utcnow())
    fire(actors.fm, case_id, "convene_support_meeting", now=utcnow(),
         members=[{"user": "livelihood", "acknowledged": True}], minutes="長男の就労について共有した。")
    fm = Person(browser, server, "fm")
    fm.page.goto(f"{server}/cases/{case_id}")
    fm.page.locator("#meetings").get_by_role("link", name=re.compile("^支援会議")).click()
    meeting_url = fm.page.url
    fm.page.select_option("select[name=user]", "shakyo")
    fm.page.get_by_role("button", name="構成員に加える").click()
    # The new member opens their inbox: the meeting is there, without the person or the records.
    shakyo = Person(browser, server, "shakyo")
    shakyo.page.get_by_role("navigation").get_by_role("link", name="部署の受信箱").click()
    entry = shakyo.page.locator("#invitations")
    assert "支援会議" in entry.inner_text() and "廿日 太郎" not in shakyo.page.locator("main").inner_text()
    shakyo.shot("25-inbox-meeting-invitation")
    entry.get_by_role("link", name="守秘義務を確認して記録を読む").click()
    assert shakyo.page.url == meeting_url
    shakyo.page.get_by_role("button", name="守秘義務を確認し、記録を読む").click()
    assert "長男の就労について共有した。" in shakyo.page.locator("main").inner_text()
    shakyo.shot("26-meeting-after-acknowledgement")
    for person in (fm, shakyo):
        person.close()


def test_a_contact_note_sent_again_after_the_back_button_is_saved_once(browser, server, actors, open_case, fire,
                                                                      sessions):
    """Back, then send again: the page comes afresh from the server, with the note the browser put back and
    the key it was first sent with; the second send saves nothing and links to the note saved."""
    case_id = open_case(categories=["poverty"], person={"name": "宮内 二郎", "name_kana": "ミヤウチ ジロウ",
                                                        "birth_date": "1970-05-05", "area": "廿日市"})
    fire(actors.livelihood, case_id, "accept_handoff")
    worker = Person(browser, server, "livelihood")
    p = worker.page
    p.goto(f"{server}/cases/{case_id}")
    p.locator("#note-form > summary").click()
    p.locator("#note-form").get_by_label("電話").check()
    p.fill("#note-body", "電話で家計の状況を聞いた。")
    p.locator("#note-form").get_by_role("button", name="記録する").click()
    assert "支援経過を記録しました" in worker.flash()

    p.go_back()
    p.locator("#note-form > summary").click()
    assert p.locator("#note-body").input_value() == "電話で家計の状況を聞いた。"  # put back by the browser
    p.locator("#note-form").get_by_role("button", name="記録する").click()
    message = p.locator(".flash")
    assert "この支援経過は既に記録されています" in message.inner_text()
    assert "2回目は保存していません" in message.inner_text()
    worker.shot("20-note-sent-again-from-history")
    with unit_of_work(sessions) as s:
        notes = s.scalars(select(ContactNote).where(ContactNote.case_id == case_id)).all()
        assert [n.body for n in notes] == ["電話で家計の状況を聞いた。"]
    message.get_by_role("link", name="記録した支援経過を見る").click()
    assert p.url.endswith(f"/cases/{case_id}#note-{notes[0].id}")
    assert p.locator(f"#note-{notes[0].id}").inner_text().endswith("電話で家計の状況を聞いた。")

    # A new note from the page as it is now is a new record.
    p.reload()
    p.locator("#note-form > summary").click()
    p.locator("#note-form").get_by_label("訪問").check()
    p.fill("#note-body", "自宅を訪問した。")
    p.locator("#note-form").get_by_role("button", name="記録する").click()
    assert "支援経過を記録しました" in worker.flash()
    with unit_of_work(sessions) as s:
        assert len(s.scalars(select(ContactNote).where(ContactNote.case_id == case_id)).all()) == 2
    worker.close()


def test_a_second_tab_on_an_older_page_is_told_it_is_out_of_date_and_keeps_what_was_typed(
        browser, server, actors, open_case, fire, sessions):
    case_id = open_case(categories=["poverty"], person={"name": "地御前 三郎", "name_kana": "ジゴゼン サブロウ",
                                                        "birth_date": "1966-06-06", "area": "廿日市"})
    fire(actors.livelihood, case_id, "accept_handoff")
    worker = Person(browser, server, "livelihood")
    first, second = worker.page, worker.context.new_page()
    for page in (first, second):
        page.goto(f"{server}/cases/{case_id}")
        page.locator("#event-request_join > summary").click()
    first.locator("#join-to_department").select_option("health")
    first.locator("#join-reason").fill("通院の支援をお願いしたい。")
    first.get_by_role("button", name="参加を依頼する").click()
    assert "参加を依頼しました" in worker.flash()

    second.locator("#join-to_department").select_option("children")
    second.locator("#join-reason").fill("子の登校の相談もあるため。")
    second.get_by_role("button", name="参加を依頼する").click()
    summary = second.locator("#refusal").inner_text()
    assert "画面が古くなっています" in summary and "既に記録されています" not in summary
    assert "入力した内容はフォームに残しています" in summary
    assert second.locator("#join-reason").input_value() == "子の登校の相談もあるため。"
    assert second.locator("#join-to_department").input_value() == "children"
    assert "健康推進課" in second.locator("#handoffs").inner_text()  # the case as it is now
    SHOTS.mkdir(parents=True, exist_ok=True)
    second.screenshot(path=str(SHOTS / "21-second-tab-out-of-date.png"), full_page=True)
    # Sent again on purpose, it goes.
    second.get_by_role("button", name="参加を依頼する").click()
    assert "参加を依頼しました" in second.locator(".flash").inner_text()
    with unit_of_work(sessions) as s:
        joins = s.scalars(select(Handoff).where(Handoff.case_id == case_id, Handoff.primary.is_(False))).all()
        assert sorted(h.to_department.code for h in joins) == ["children", "health"]
    second.close()
    worker.close()
