"""名寄せ on the hard names: the same 宛名番号 is the same person; the same birth date with the same name or kana
(異体字, width, kana kind, spaces, ヴ folded) is a candidate; twins and other 宛名番号 are not."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from engine.cases import intake
from engine.db import unit_of_work
from engine.models import Case, Person, PersonCandidate, User
from engine.people import matching
from engine.people.names import match_key
from tests.conftest import NOW, intake_fields

BORN = "1958-03-14"


@pytest.mark.parametrize("a, b", [
    ("𠮷野 さくら", "吉野 さくら"),
    ("髙橋 一郎", "高橋 一郎"),
    ("山﨑 二郎", "山崎 二郎"),
    ("齋藤 三郎", "斎藤 三郎"),
    ("斉藤 三郎", "斎藤 三郎"),
    ("齊藤 三郎", "齋藤 三郎"),
    ("ヴィクトル", "ビクトル"),
    ("ヴァレリー", "バレリー"),
    ("廿日太郎", "廿日 太郎"),
    ("廿日　太郎", "廿日 太郎"),
    ("ﾊﾂｶ ﾀﾛｳ", "はつか たろう"),
    ("ハツカ タロウ", "はつかたろう"),
    ("ＨＡＴＳＵＫＡ", "hatsuka"),
])
def test_the_keys_fold_what_windows_write_differently(a, b):
    assert match_key(a) == match_key(b) != ""


@pytest.mark.parametrize("a, b", [("吉野 さくら", "吉田 さくら"), ("斎藤 三郎", "佐藤 三郎"), ("ビクトル", "ピクトル")])
def test_different_names_stay_different(a, b):
    assert match_key(a) != match_key(b)


def _open(sessions, actors, **person) -> Case:
    fields = intake_fields(person={"area": "廿日市", "birth_date": BORN, **person})
    with unit_of_work(sessions) as s:
        case = intake.open_case(s, s.get(User, actors.window.id), fields, now=NOW, route=False)
        s.expunge(case)
        return case


def _candidates(sessions, person_id) -> list[tuple[int, str]]:
    with sessions() as s:
        return [(c.candidate_id, c.reason) for c in s.scalars(
            select(PersonCandidate).where(PersonCandidate.person_id == person_id))]


def test_the_same_resident_id_is_the_same_person(sessions, actors):
    first = _open(sessions, actors, name="廿日 太郎", name_kana="ハツカ タロウ", resident_id="0001")
    # Another window, another spelling, another birth date typed: the 宛名番号 decides.
    second = _open(sessions, actors, name="廿日 太朗", resident_id="0001", phone="0829-11-2222")
    assert second.person_id == first.person_id and second.person_match == matching.MATCHED
    with sessions() as s:
        person = s.get(Person, first.person_id)
        # What the record lacked is filled in; what it held stays.
        assert (person.name, person.phone) == ("廿日 太郎", "0829-11-2222")
        assert s.scalar(select(func.count()).select_from(Person)) == 1


@pytest.mark.parametrize("known, new, reason", [
    ({"name": "𠮷野 さくら", "name_kana": "ヨシノ サクラ"}, {"name": "吉野 さくら"}, "name"),
    ({"name": "髙橋 一郎"}, {"name": "高橋一郎", "name_kana": "タカハシ イチロウ"}, "name"),
    ({"name": "山﨑 二郎", "name_kana": "ヤマサキ ジロウ"}, {"name": "山崎 二郎", "name_kana": "ﾔﾏｻｷ ｼﾞﾛｳ"}, "name_kana"),
    ({"name": "齋藤 三郎"}, {"name": "斉藤 三郎"}, "name"),
    # The same kana with different kanji: 斉藤 or 斎藤 heard on the phone, written as 西藤.
    ({"name": "斎藤 四郎", "name_kana": "サイトウ シロウ"}, {"name": "西藤 四郎", "name_kana": "さいとう しろう"}, "kana"),
    ({"name": "ヴィクトル 五郎"}, {"name": "ビクトル 五郎"}, "name"),
    # A name written in kana meets the other's kana.
    ({"name": "廿日 六郎", "name_kana": "ハツカ ロクロウ"}, {"name": "はつか ろくろう"}, "name"),
])
def test_the_same_birth_date_and_name_or_kana_is_a_candidate_never_merged(sessions, actors, known, new, reason):
    first = _open(sessions, actors, **known)
    second = _open(sessions, actors, **new)
    assert second.person_id != first.person_id and second.person_match == matching.CANDIDATE
    assert _candidates(sessions, second.person_id) == [(first.person_id, reason)]


def test_twins_born_the_same_day_are_two_people(sessions, actors):
    first = _open(sessions, actors, name="廿日 一花", name_kana="ハツカ イチカ")
    second = _open(sessions, actors, name="廿日 二葉", name_kana="ハツカ フタバ")
    assert second.person_match == matching.NEW and _candidates(sessions, second.person_id) == []
    assert first.person_id != second.person_id


def test_another_birth_date_or_another_resident_id_is_another_person(sessions, actors):
    first = _open(sessions, actors, name="高橋 一郎", resident_id="0001")
    other_day = _open(sessions, actors, name="高橋 一郎", birth_date="1958-03-15")
    other_number = _open(sessions, actors, name="髙橋 一郎", resident_id="0002")
    assert other_day.person_match == matching.NEW and other_number.person_match == matching.NEW
    assert _candidates(sessions, other_number.person_id) == []
    # Without a 宛名番号 of its own, the same name and birth date may be either numbered record.
    unnumbered = _open(sessions, actors, name="高橋 一郎")
    assert _candidates(sessions, unnumbered.person_id) == [(first.person_id, "name"),
                                                           (other_number.person_id, "name")]


def test_no_birth_date_no_candidate(sessions, actors):
    _open(sessions, actors, name="高橋 一郎", birth_date=None)
    again = _open(sessions, actors, name="高橋 一郎", birth_date=None)
    assert again.person_match == matching.NEW


def test_find_reads_one_birth_date(session, departments):
    session.add_all([Person(name=f"利用者{i}", name_key=f"利用者{i}", birth_date=date(1950, 1, 1 + i % 28))
                     for i in range(60)])
    session.flush()
    found = matching.find(session, name="利用者3", birth_date=date(1950, 1, 4))
    assert [p.name for p, _ in found.candidates] == ["利用者3"] and found.kind == matching.CANDIDATE
