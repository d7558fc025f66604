"""年度集計: consultations, people and households side by side (engine.reports.people), with exact numbers over
two fiscal years: a person who consults twice is one person, a record merged into a known one is not new, a
household counts with the open cases of its current members at the year's end (a case closed then and reopened
since does not count for that year; a son who moved out does not count), and the routing rules' 多機関協働
combinations are found across the members' cases (8050: the mother's 高齢・介護 and her son's ひきこもり)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import delete, select

from engine.calendar import JST
from engine.db import unit_of_work
from engine.models import Case, HouseholdMember, RoutingRuleVersion, User
from engine.people import households, records
from engine.reports import files
from engine.reports import yearly as reports
from tests.conftest import NOW
from tests.household_support import MOTHER, household  # noqa: F401  (fixture)

TODAY = NOW.astimezone(JST).date()  # 2026-11-30, within 令和8年度


def at(y, m, d) -> datetime:
    return datetime(y, m, d, 10, 0, tzinfo=JST).astimezone(timezone.utc)


def person(name, resident_id=None, birth_date=None, area="廿日市"):
    return {"name": name, "resident_id": resident_id, "birth_date": birth_date, "area": area}


@pytest.fixture
def two_years(household, open_case, fire, actors, sessions):
    """令和7年度 and 令和8年度 of four households and two lone people (see the module docstring)."""
    # 令和7年度
    open_case(person=person("佐伯 三郎", "P-1"), categories=["poverty"], now=at(2025, 5, 1))
    q1 = open_case(person=person("能美 キヨ", birth_date="1950-03-03"), categories=["health"], now=at(2025, 5, 7))
    widow = open_case(person=person("宮島 ウメ", "W-1"), categories=["elder_care"], now=at(2025, 6, 2),
                      household=[{"relationship": "長男", "name": "宮島 健", "resident_id": "W-2"}])
    open_case(person=person("宮島 健", "W-2", "1975-01-01"), categories=["hikikomori"], now=at(2025, 7, 1))
    fire(actors.window, widow, "close", close_reason="moved_out", now=at(2026, 2, 2))
    # 令和8年度: the mother and her son (the fixture), her second consultation, and the others.
    fire(actors.window, widow, "reopen", reason="戻ってきた", now=at(2026, 5, 11))
    open_case(person=MOTHER, categories=["poverty"])
    open_case(person=person("佐伯 三郎", "P-1"), categories=["debt"])
    q2 = open_case(person=person("能美 キヨ", birth_date="1950-03-03"), categories=["isolation"])
    open_case(person=person("大野 ユキ", "D-1", "1988-02-02"), categories=["child_rearing"],
              household=[{"relationship": "母", "name": "大野 トメ", "resident_id": "D-2"}])
    open_case(person=person("大野 トメ", "D-2"), categories=["elder_care"])
    open_case(person=person("吉和 タケ", "Z-1"), categories=["elder_care"],
              household=[{"relationship": "長男", "name": "吉和 誠", "resident_id": "Z-2"}])
    moved = open_case(person=person("吉和 誠", "Z-2", "1970-08-08"), categories=["hikikomori"])
    with unit_of_work(sessions) as s:
        window, fm = s.get(User, actors.window.id), s.get(User, actors.fm.id)
        # The same person, recorded anew at another window without a 宛名番号: merged into the known record.
        known, anew = s.get(Case, q1).person_id, s.get(Case, q2).person_id
        assert known != anew
        records.merge(s, fm, known, anew, reason="同じ方と確認した", now=NOW)
        # The son moved out before the year's end of the report.
        place = s.scalars(select(HouseholdMember).where(
            HouseholdMember.person_id == s.get(Case, moved).person_id)).one()
        households.end_membership(s, window, place.id, date(2026, 10, 1), now=NOW)


def figures(sessions, actor, year):
    with unit_of_work(sessions) as s:
        report = reports.yearly(s, s.get(User, actor.id), year, today=TODAY)
        return report, {label: n for title, label, n in report.csv_rows() if title == "相談・人・世帯"}


def test_the_current_year_counts_consultations_people_and_households(two_years, sessions, actors):
    report, got = figures(sessions, actors.fm, 2026)
    assert got == {
        "相談（この年度に受け付けたケース）": 9,
        "人（相談の本人）": 8,            # the mother's two consultations and the merged record are one person each
        "うち、この年度に初めて記録された人": 6,  # not 佐伯 三郎 nor 能美 キヨ, known since last year
        "支援中のケースが2件以上ある世帯": 3,    # 廿日 (3 cases), 大野 (2), 宮島 (reopened: 2); not 吉和 (moved out)
        "複合課題の世帯: 8050": 2,             # 廿日, 宮島
        "複合課題の世帯: ダブルケア": 1,         # 大野: the daughter's 子育て and her mother's 介護
        "複合課題の世帯: ヤングケアラー": 0,
        "複合課題の世帯: DVと子育て": 0,
        "複合課題の世帯: ひきこもりと生活困窮": 1,  # 廿日: the son's ひきこもり, the mother's 生活困窮
    }
    assert [(f.label, f.count) for f in report.headline] == [("相談", 9), ("人", 8), ("支援中のケースが2件以上ある世帯", 3)]
    side = next(s for s in report.sections if s.title == "相談・人・世帯")
    assert "令和8年11月30日時点" in side.note  # the current year: as of today


def test_a_past_year_counts_its_households_at_its_end(two_years, sessions, actors):
    _, got = figures(sessions, actors.admin, 2025)
    assert got["相談（この年度に受け付けたケース）"] == 4
    assert got["人（相談の本人）"] == 4 and got["うち、この年度に初めて記録された人"] == 4
    # On 31 March 2026 the widow's case was closed (it was reopened in May): her son's case alone was open.
    assert got["支援中のケースが2件以上ある世帯"] == 0 and got["複合課題の世帯: 8050"] == 0


def test_the_figures_are_in_the_csv_and_the_workbook(two_years, sessions, actors):
    report, _ = figures(sessions, actors.fm, 2026)
    text = files.csv_text(report)
    assert "令和8年度,相談・人・世帯,人（相談の本人）,8\r\n" in text
    assert "令和8年度,相談・人・世帯,複合課題の世帯: 8050,2\r\n" in text
    assert len(files.workbook(report)) > 0


def test_without_rules_in_force_no_combination_is_counted(sessions, actors, household):
    with unit_of_work(sessions) as s:
        s.execute(delete(RoutingRuleVersion))
    _, got = figures(sessions, actors.fm, 2026)
    assert not [label for label in got if label.startswith("複合課題の世帯")]
    assert got["支援中のケースが2件以上ある世帯"] == 1  # the mother's case and her son's, in one household
