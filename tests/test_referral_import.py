"""`tsunagu referrals import`: a CSV of referrals from another system, each created as POST /referrals would,
once per external_ref; a refused row said by line and column while the others go on; a file that cannot be
read refused whole, with nothing imported."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.db import unit_of_work
from engine.models import AuditEvent, Case, HouseholdMember, Person
from engine.referrals import clients as api_clients
from engine.referrals import intake as referrals
from schemas.referrals import ReferralIn
from tests.api.support import referral

HEADER = ("external_ref,referrer.organization,person.name,person.name_kana,person.birth_date,person.area,"
          "categories,summary,urgency,household.1.relationship,household.1.name,household.1.birth_year")
EIGHTY_FIFTY = ("OONO-1,大野地域包括支援センター,大野 ウメ,オオノ ウメ,昭和21年5月1日,大野,elder_care hikikomori,"
                "80代の母と50代の長男の二人世帯。,normal,長男,大野 一郎,1974")
POVERTY = "OONO-2,大野地域包括支援センター,大野 花子,,R8.4.1,大野,poverty,家賃を滞納している。,urgent,,,"


@pytest.fixture
def partner(sessions, departments):
    with unit_of_work(sessions) as s:
        api_clients.create_token(s, client_name="oono", scopes=["referrals:write", "referrals:read"])
    return "oono"


@pytest.fixture
def run(cli, tmp_path):
    def do(text: str | bytes, *args: str, name: str = "referrals.csv"):
        path = tmp_path / name
        path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        return cli("referrals", "import", str(path), *args)

    return do


def _cases(sessions) -> list[Case]:
    with sessions() as s:
        return list(s.scalars(select(Case).order_by(Case.id)))


def _count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_each_row_becomes_the_referral_the_api_would_have_made(run, partner, sessions):
    result = run("\n".join([HEADER, EIGHTY_FIFTY, POVERTY]) + "\n", "--client", partner)
    assert result.exit_code == 0, result.output
    assert "新しい紹介 2 件、取り込み済み 0 件、受け付けなかった行 0 件。" in result.output
    with sessions() as s:
        first, second = s.scalars(select(Case).order_by(Case.id))
        assert "2行目: 受け付けました " + first.case_number in result.output and "高齢介護課" in result.output
        assert (first.external_ref, first.state, first.source, first.proposed_department.code) == (
            "OONO-1", "handoff", "api", "elderly")
        assert sorted(c.code for c in first.categories) == ["elder_care", "hikikomori"] and first.routing_rule_name
        assert (second.external_ref, second.urgency, second.proposed_department.code) == (
            "OONO-2", "urgent", "livelihood")
        person = s.get(Person, first.person_id)
        assert (person.name, person.birth_date.isoformat()) == ("大野 ウメ", "1946-05-01")
        assert s.get(Person, second.person_id).name == "大野 花子"
        members = s.scalars(select(HouseholdMember)).all()
        assert [(m.relationship_label, m.name, m.birth_year) for m in members if m.name] == [("長男", "大野 一郎", 1974)]
        created = s.scalars(select(AuditEvent).where(AuditEvent.case_id == first.id,
                                                     AuditEvent.action == "case.open")).all()
        assert created and created[0].client_id is not None  # recorded as the client's, as over the API


def test_importing_again_or_the_rest_of_a_stopped_file_creates_nothing_twice(run, partner, sessions):
    assert run("\n".join([HEADER, EIGHTY_FIFTY]) + "\n", "--client", partner).exit_code == 0
    again = run("\n".join([HEADER, EIGHTY_FIFTY, POVERTY]) + "\n", "--client", partner)
    assert again.exit_code == 0, again.output
    assert "2行目: 取り込み済みです" in again.output and "新しい紹介 1 件、取り込み済み 1 件" in again.output
    assert [c.external_ref for c in _cases(sessions)] == ["OONO-1", "OONO-2"]
    third = run("\n".join([HEADER, EIGHTY_FIFTY, POVERTY]) + "\n", "--client", partner)
    assert "新しい紹介 0 件、取り込み済み 2 件" in third.output and len(_cases(sessions)) == 2


def test_a_row_changed_since_it_was_imported_is_refused_not_replayed(run, partner, sessions):
    assert run("\n".join([HEADER, POVERTY]) + "\n", "--client", partner).exit_code == 0
    changed = run("\n".join([HEADER, POVERTY.replace("家賃を滞納している。", "家賃と光熱費を滞納している。")]) + "\n",
                  "--client", partner)
    assert changed.exit_code == 1
    assert "エラー: 2行目" in changed.output and "別の内容" in changed.output
    assert [c.summary for c in _cases(sessions)] == ["家賃を滞納している。"]


def test_a_referral_the_client_already_posted_is_said_and_not_created_again(run, partner, sessions):
    with unit_of_work(sessions) as s:
        client = s.scalar(select(api_clients.ApiClient).where(api_clients.ApiClient.name == partner))
        referrals.receive(s, client, key="over-the-api",
                          payload=ReferralIn().load(referral(external_ref="OONO-2")))
    result = run("\n".join([HEADER, POVERTY]) + "\n", "--client", partner)
    assert result.exit_code == 0, result.output
    assert "既にケース" in result.output and "取り込み済み 1 件" in result.output and len(_cases(sessions)) == 1


def test_a_dry_run_routes_every_row_and_saves_nothing(run, partner, sessions):
    audit_before = _count(sessions, AuditEvent)
    result = run("\n".join([HEADER, EIGHTY_FIFTY, POVERTY]) + "\n", "--client", partner, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "2行目: 受け付けられます（" in result.output and "高齢介護課" in result.output
    assert "（試行: 何も保存していません）" in result.output
    assert _cases(sessions) == [] and _count(sessions, Person) == 0
    assert _count(sessions, AuditEvent) == audit_before


def test_bad_rows_are_said_by_line_and_column_and_the_others_go_on(run, partner, sessions):
    rows = [
        HEADER,
        EIGHTY_FIFTY,
        "OONO-3,大野地域包括支援センター,大野 三郎,,2026/4/31,大野,poverty,x,,,,",
        "OONO-4,大野地域包括支援センター,=cmd|' /C calc'!A0,,,大野,poverty,x,,,,",
        "OONO-1,大野地域包括支援センター,大野 重複,,,大野,poverty,x,,,,",
        "OONO-5,大野地域包括支援センター,佐伯 次郎,,,佐伯,poverty,x,,,,,余分",
        "OONO-6,大野地域包括支援センター,吉和 三郎,,,吉和,nosuch,x,,,,",
        "OONO-7,,宮島 四郎,,,宮島,poverty,x,,長男,,19xx",
        "OONO-8,大野地域包括支援センター,宮島 五郎,,,宮島,poverty,x,,,,",
    ]
    result = run("\n".join(rows) + "\n", "--client", partner)
    assert result.exit_code == 1
    said = result.output
    assert "エラー: 3行目 person.birth_date: 2026年4月31日という日付はありません。" in said
    assert "エラー: 4行目 person.name: 数式のように見える値" in said
    assert "エラー: 5行目 external_ref: external_ref「OONO-1」は2行目と同じです" in said
    assert "エラー: 6行目 行: 項目の数（13）が見出しの列の数（12）より多くなっています。" in said
    assert "エラー: 7行目 categories: 「nosuch」という分類はありません。" in said
    assert "エラー: 8行目 " in said and "referrer.organization" in said and "household.1.birth_year" in said
    assert "新しい紹介 2 件、取り込み済み 0 件、受け付けなかった行 6 件。" in said
    assert [c.external_ref for c in _cases(sessions)] == ["OONO-1", "OONO-8"]


def test_dates_as_city_systems_write_them_and_a_telephone_with_a_plus(run, partner, sessions):
    header = "external_ref,referrer.organization,person.name,person.birth_date,person.phone,categories,summary"
    rows = [header, "A,包括,甲,令和元年5月1日,+81 829-55-0101,poverty,x", "B,包括,乙,H31.4.30,,poverty,x",
            "C,包括,丙,1950/1/2,,poverty,x"]
    result = run("\n".join(rows) + "\n", "--client", partner)
    assert result.exit_code == 0, result.output
    with sessions() as s:
        people = {p.name: p for p in s.scalars(select(Person))}
    assert [people[n].birth_date.isoformat() for n in ("甲", "乙", "丙")] == ["2019-05-01", "2019-04-30", "1950-01-02"]
    assert people["甲"].phone == "+81 829-55-0101"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
def test_utf8_with_a_bom_and_shift_jis_are_read(run, partner, sessions, encoding):
    result = run("\r\n".join([HEADER, EIGHTY_FIFTY]).encode(encoding) + b"\r\n", "--client", partner)
    assert result.exit_code == 0, result.output
    (case,) = _cases(sessions)
    with sessions() as s:
        assert s.get(Person, case.person_id).name_kana == "オオノ ウメ"


@pytest.mark.parametrize("content,says", [
    ("\n".join([HEADER, EIGHTY_FIFTY]).encode("utf-16"), "文字コードを読めません"),
    (b"", "ファイルが空です"),
    (HEADER.encode() + b"\n", "紹介の行がありません"),
    (HEADER.replace("person.name,", "person.nmae,").encode() + b"\n" + EIGHTY_FIFTY.encode(),
     "知らない列があります: 'person.nmae'"),
    (HEADER.replace("summary,", "").encode() + b"\n", "必須の列がありません: summary"),
    ((HEADER + ",categories").encode() + b"\n", "同じ列が2回以上あります: categories"),
    (("\n".join([HEADER, EIGHTY_FIFTY, "OONO-9,包括,甲,,,,poverty," + "長" * 200_000 + ",,,,"]) + "\n").encode(),
     "3行目: 1つの項目が長すぎます"),
    (("\n".join([HEADER, EIGHTY_FIFTY, 'OONO-9,包括,"甲,,,,poverty,x,,,,']) + "\n").encode(), "3行目: CSV として読めません"),
])
def test_a_file_that_cannot_be_read_is_refused_whole_and_nothing_is_imported(run, partner, sessions, content, says):
    result = run(content, "--client", partner)
    assert result.exit_code == 1
    assert says in result.output and "何も取り込んでいません" in result.output
    assert _cases(sessions) == []


def test_the_client_must_be_one_that_could_post_referrals(run, partner, sessions, departments):
    with unit_of_work(sessions) as s:
        api_clients.create_token(s, client_name="reader", scopes=["referrals:read"])
        api_clients.revoke_tokens(s, partner)
    body = "\n".join([HEADER, EIGHTY_FIFTY]) + "\n"
    for client, says in (("nobody", "「nobody」というクライアントはありません"),
                         ("reader", "referrals:write のスコープがありません"),
                         (partner, "トークンはすべて失効しています")):
        result = run(body, "--client", client)
        assert result.exit_code == 1 and says in result.output
    assert _cases(sessions) == []
