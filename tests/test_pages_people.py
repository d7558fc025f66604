"""The person page and the case page's 世帯 section: households with their members' periods and cases, members
added and leaving, refused forms (each message beside its input, nothing written), and the audit rows."""
from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import select

from engine import calendar
from engine.models import AuditEvent, Case, HouseholdMember
from tests.pages_support import app, count, error_beside, input_value, text_of, web  # noqa: F401  (fixtures)
from tests.people_support import household  # noqa: F401  (fixture)


def _members(sessions, household_id):
    with sessions() as s:
        return [(m.name or (m.person.name if m.person else None), m.relationship_label, m.until)
                for m in s.scalars(select(HouseholdMember).where(HouseholdMember.household_id == household_id)
                                   .order_by(HouseholdMember.id))]


def _add(household, **fields):
    return f"/people/{household.taro}/households/{household.household}/members", {
        "submission_token": fields.pop("submission_token", uuid.uuid4().hex), **fields}


# --- the case page's 世帯 section ---------------------------------------------------------------------

def test_the_case_page_lists_the_household_with_periods_and_the_other_cases(household, web, sessions):
    owner = web(household.users["owner"])
    owner.get(f"/people/{household.taro}")
    left_on = calendar.wareki(date.today() - timedelta(days=3))
    r = owner.post(f"/people/{household.taro}/members/{household.hanako_member}/end",
                   {"until": (date.today() - timedelta(days=3)).isoformat()})
    assert r.status_code == 303
    page = text_of(owner.get(f"/cases/{household.taro_case}"))
    # Every member with relationship, name, birth year (和暦), note; one who left is shown as such.
    for shown in ("長男 廿日 一郎 昭和49年（1974年） 長期のひきこもり", "妻 廿日 花子 昭和25年（1950年） 要介護2",
                  f"世帯を離れた {left_on}まで"):
        assert shown in page, shown
    # 一郎's case is not in 生活福祉課's sight: that it exists and who owns it, nothing more.
    assert "長男 廿日 一郎（担当: はつかいちひきこもり支援ステーション）のケースがあります" in page
    with sessions() as s:
        number = s.get(Case, household.ichiro_case).case_number
    assert number not in page and f"/cases/{household.ichiro_case}" not in owner.get(
        f"/cases/{household.taro_case}").get_data(as_text=True)


def test_a_reader_of_the_other_case_sees_it_linked_with_its_state_and_owner(household, web, sessions):
    body = web(household.users["member"]).get(f"/cases/{household.taro_case}").get_data(as_text=True)
    assert f'href="/cases/{household.ichiro_case}"' in body
    assert "担当決定・担当 はつかいちひきこもり支援ステーション" in text_of(body)


def test_the_household_as_seen_from_another_member_names_whose_view_a_relationship_is(household, web):
    page = text_of(web(household.users["member"]).get(f"/people/{household.ichiro}"))
    assert "妻（廿日 太郎からみて） 廿日 花子" in page
    # 太郎's case, among the household's, is named by how 一郎's page relates him.
    assert "世帯員 廿日 太郎: ケース" in page


# --- adding a member ------------------------------------------------------------------------------

def test_a_member_is_added_by_name_and_birth_year_and_shown_with_their_period(household, web, sessions):
    owner = web(household.users["owner"])
    owner.get(f"/people/{household.taro}")
    url, form = _add(household, name="廿日 次郎", birth_year="昭和52年", relationship="次男",
                     relative_to=str(household.taro), since="令和8年4月1日", note="週末に帰省")
    r = owner.post(url, form)
    assert r.status_code == 303 and r.headers["Location"].endswith(f"#household-{household.household}")
    page = text_of(owner.get(r.headers["Location"]))
    assert "世帯員を追加しました。" in page
    assert "次男 廿日 次郎 昭和52年（1977年） 週末に帰省 令和8年4月1日から" in page
    assert count(sessions, AuditEvent, AuditEvent.action == "household.add_member",
                 AuditEvent.object_id == str(household.household)) == 1
    # The same form sent again (a double click, a reload) adds no one.
    again = owner.post(url, form)
    assert again.status_code == 303 and "この世帯員は既に記録されています" in text_of(owner.get(again.headers["Location"]))
    assert [m[0] for m in _members(sessions, household.household)].count("廿日 次郎") == 1


def test_a_member_with_a_record_is_added_by_its_number(household, web, sessions, open_case, fire, actors):
    # A brother with a case at 生活福祉課: the owner may name him by his record's number.
    case = open_case(person={"name": "廿日 三郎", "birth_date": "1980-02-03", "area": "大野"}, categories=["debt"])
    with sessions() as s:
        saburo = s.get(Case, case).person_id
    owner = web(household.users["owner"])
    owner.get(f"/people/{household.taro}")
    url, form = _add(household, person_id=str(saburo), relationship="三男", relative_to=str(household.taro))
    assert owner.post(url, form).status_code == 303
    assert ("廿日 三郎", "三男", None) in _members(sessions, household.household)
    # Named twice: refused beside the number.
    url, form = _add(household, person_id=str(saburo), relationship="三男", submission_token="another")
    r = owner.post(url, form)
    assert r.status_code == 422
    assert error_beside(r, f"hh{household.household}", "person_id") == "この人は既にこの世帯の世帯員です。"


def test_a_bad_member_form_comes_back_with_each_message_beside_its_input(household, web, sessions, open_case):
    # A person in no case 生活福祉課 reads: their number finds no one (no name learnt by guessing numbers).
    other = open_case(person={"name": "別人 四郎", "birth_date": "1990-01-01", "area": "宮島"},
                      categories=["child_rearing"])
    with sessions() as s:
        stranger = s.get(Case, other).person_id
    owner = web(household.users["owner"])
    owner.get(f"/people/{household.taro}")
    before = _members(sessions, household.household)
    p = f"hh{household.household}"
    r = owner.post(*_add(household, name="", relationship="", birth_year="昭和", note="メモの下書き"))
    assert r.status_code == 422
    assert error_beside(r, p, "relationship") == "必須項目です。"
    assert error_beside(r, p, "birth_year") == "年は 1974 または 昭和49年 の形で入力してください。"
    assert input_value(r, p, "note") == "メモの下書き"  # what was typed stays
    r = owner.post(*_add(household, relationship="長女"))
    assert r.status_code == 422 and error_beside(r, p, "name").startswith("氏名を入力してください")
    for number in ("999999", str(stranger)):
        r = owner.post(*_add(household, person_id=number, relationship="長女"))
        assert r.status_code == 422 and error_beside(r, p, "person_id") == "指定された人は見つかりません。"
    r = owner.post(*_add(household, name="廿日 五郎", relationship="孫", birth_year="1850"))
    assert r.status_code == 422 and error_beside(r, p, "birth_year").startswith("生まれ年は1868年（明治元年）から")
    future = calendar.wareki(date.today() + timedelta(days=30))
    r = owner.post(*_add(household, name="廿日 五郎", relationship="孫", since=future))
    assert r.status_code == 422 and error_beside(r, p, "since") == "世帯に加わった日に、先の日付は入力できません。"
    assert _members(sessions, household.household) == before
    assert count(sessions, AuditEvent, AuditEvent.action == "household.add_member") == 0


def test_only_those_who_may_write_a_members_case_change_the_household(household, web, sessions):
    # 社協 reads 太郎's case under his consent but does not write it: no form, and a form sent anyway is refused.
    covered = web(household.users["covered"])
    body = covered.get(f"/people/{household.taro}").get_data(as_text=True)
    assert "世帯員を追加する" not in body and "世帯を離れた日を記録する" not in body
    before = _members(sessions, household.household)
    refused = count(sessions, AuditEvent, AuditEvent.outcome == "refused")
    r = covered.post(*_add(household, name="廿日 五郎", relationship="孫"))
    assert r.status_code == 404
    r = covered.post(f"/people/{household.taro}/members/{household.hanako_member}/end", {"until": "令和8年12月1日"})
    assert r.status_code == 404
    assert _members(sessions, household.household) == before
    assert count(sessions, AuditEvent, AuditEvent.outcome == "refused") == refused + 2


# --- a member leaving ---------------------------------------------------------------------------------

def test_a_member_leaving_needs_a_real_day_not_ahead_and_not_before_they_came(household, web, sessions):
    owner = web(household.users["owner"])
    owner.get(f"/people/{household.taro}")
    url, form = _add(household, name="廿日 次郎", relationship="次男", since="令和8年4月1日")
    owner.post(url, form)
    with sessions() as s:
        jiro = s.scalar(select(HouseholdMember.id).where(HouseholdMember.name == "廿日 次郎"))
    end = f"/people/{household.taro}/members/{jiro}/end"
    for typed, message in (
            ("", "必須項目です。"),
            ("令和8年2月30日", "2月30日という日付はありません。"),
            ("令和8年3月31日", "世帯を離れた日は、世帯に加わった日以降にしてください。"),
            (calendar.wareki(date.today() + timedelta(days=1)), "世帯を離れた日に、先の日付は入力できません。")):
        r = owner.post(end, {"until": typed})
        assert r.status_code == 422 and error_beside(r, f"end{jiro}", "until") == message, typed
    assert ("廿日 次郎", "次男", None) in _members(sessions, household.household)
    r = owner.post(end, {"until": "令和8年5月6日"})
    assert r.status_code == 303
    assert ("廿日 次郎", "次男", date(2026, 5, 6)) in _members(sessions, household.household)
    assert "令和8年4月1日から 世帯を離れた 令和8年5月6日まで" in text_of(owner.get(r.headers["Location"]))
    assert count(sessions, AuditEvent, AuditEvent.action == "household.end_member") == 1
    # Sent again: already recorded, nothing changes; the page as it is now.
    again = owner.post(end, {"until": "令和8年5月7日"})
    assert again.status_code == 409 and "既に" in text_of(again)
    assert ("廿日 次郎", "次男", date(2026, 5, 6)) in _members(sessions, household.household)
    assert count(sessions, AuditEvent, AuditEvent.action == "household.end_member") == 1


def test_a_person_page_of_someone_no_longer_in_sight_is_not_found(household, web, sessions):
    r = web(household.users["unrelated"]).get(f"/people/{household.ichiro}")
    assert r.status_code == 404 and "廿日 一郎" not in text_of(r)
    assert web(household.users["owner"]).get("/people/999999").status_code == 404


def test_a_person_with_no_household_on_record_gets_one_with_the_first_member(web, sessions, actors, open_case,
                                                                              fire):
    case = open_case(person={"name": "宮島 一人", "birth_date": "1970-03-03", "area": "宮島"}, categories=["poverty"])
    fire(actors.livelihood, case, "accept_handoff")
    with sessions() as s:
        person = s.get(Case, case).person_id
    staff = web(actors.livelihood)
    page = staff.get(f"/people/{person}")
    assert "世帯の記録はありません。" in text_of(page) and "世帯員を追加する" in text_of(page)
    url = f"/people/{person}/household/members"
    r = staff.post(url, {"relationship": "", "name": "宮島 和子", "submission_token": uuid.uuid4().hex})
    assert r.status_code == 422 and error_beside(r, "hhnew", "relationship") == "必須項目です。"
    assert count(sessions, HouseholdMember) == 0  # nothing half-written: no household without its member
    r = staff.post(url, {"relationship": "母", "name": "宮島 和子", "birth_year": "1944",
                         "relative_to": str(person), "submission_token": uuid.uuid4().hex})
    assert r.status_code == 303
    page = text_of(staff.get(r.headers["Location"]))
    assert "本人 宮島 一人" in page and "母 宮島 和子 昭和19年（1944年）" in page
    # A reader who may not write the case is offered nothing, and refused.
    fm = web(actors.fm)
    assert "世帯員を追加する" not in text_of(fm.get(f"/people/{person}"))
