"""A household for the person page's and the case page's tests, with each relation a reader may have.

廿日 太郎 (born 1946) consults at the window about money (生活困窮): 生活福祉課 accepts the case, asks 健康推進課
to join (accepted), the case FM convenes a 支援会議 with the ひきこもり支援ステーション as a member, and the
person consents to share with 生活福祉課, 健康推進課 and 社協. He lists his household: his wife 廿日 花子 (no
record of her own) and his son 廿日 一郎 (with a 宛名番号, so a record of his own), whose own case (ひきこもり)
the ステーション accepted. Each role below is one person's relation to 太郎.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from engine.cases import joins
from engine.db import unit_of_work
from engine.models import Case, Handoff, HouseholdMember, User

CONTENT, METADATA, NOT_FOUND = "content", "metadata", "not_found"

# role → (what it is, how far it sees 太郎 on his person page)
ROLES = {
    "owner": ("担当部署（生活福祉課）の職員", CONTENT),
    "joined": ("参加依頼を受けて参加した部署（健康推進課）の職員", CONTENT),
    "covered": ("同意の範囲に含まれる市の外の機関（社協）の職員", CONTENT),
    "member": ("支援会議の構成員（ひきこもり支援ステーション）の職員", CONTENT),
    "fm_other": ("このケースの担当ではないFM", METADATA),
    "admin": ("管理者", METADATA),
    "unrelated": ("関わりのない部署（こども家庭課）の職員", NOT_FOUND),
    "outside_no_basis": ("根拠のない市の外の機関（大野地域包括支援センター）の職員", NOT_FOUND),
}

TARO = {"name": "廿日 太郎", "name_kana": "ハツカ タロウ", "birth_date": "1946-05-01", "area": "大野",
        "phone": "0829-55-0101"}
ICHIRO = {"name": "廿日 一郎", "name_kana": "ハツカ イチロウ", "birth_date": "1974-08-10", "area": "大野",
          "resident_id": "0000000101"}
HOUSEHOLD = [{"relationship": "長男", "name": "廿日 一郎", "resident_id": "0000000101", "birth_year": 1974,
              "note": "長期のひきこもり"},
             {"relationship": "妻", "name": "廿日 花子", "birth_year": 1950, "note": "要介護2"}]


@dataclass
class Household:
    taro_case: int
    ichiro_case: int
    taro: int  # person ids
    ichiro: int
    household: int
    hanako_member: int
    users: dict  # role → User


@pytest.fixture
def household(sessions, actors, make_user, open_case, fire) -> Household:
    taro_case = open_case(person=TARO, categories=["poverty"], household=HOUSEHOLD)
    fire(actors.livelihood, taro_case, "accept_handoff")
    with unit_of_work(sessions) as s:
        version = s.get(Case, taro_case).version
        joins.request_join(s, s.get(User, actors.livelihood.id), taro_case, to_department="health",
                           reason="通院の支援", summary="通院の支援をお願いしたい", version=version)
    with unit_of_work(sessions) as s:
        sheet = s.scalar(select(Handoff).where(Handoff.case_id == taro_case, Handoff.primary.is_(False)))
        joins.answer_join(s, s.get(User, actors.health.id), sheet.id, "accept", version=sheet.version)
    fire(actors.fm, taro_case, "convene_support_meeting", members=[{"user": "hikikomori", "acknowledged": True}])
    fire(actors.fm, taro_case, "seek_consent")
    fire(actors.livelihood, taro_case, "record_consent", given_by="本人", method="written",
         agencies=["livelihood", "health", "shakyo"])
    ichiro_case = open_case(person=ICHIRO, categories=["hikikomori"])
    fire(actors.hikikomori, ichiro_case, "accept_handoff")
    with unit_of_work(sessions) as s:
        taro, ichiro = (s.get(Case, taro_case).person_id, s.get(Case, ichiro_case).person_id)
        hanako = s.scalar(select(HouseholdMember).where(HouseholdMember.name == "廿日 花子"))
        household_id, hanako_id = hanako.household_id, hanako.id
    users = {"owner": actors.livelihood, "joined": actors.health, "covered": actors.shakyo,
             "member": actors.hikikomori, "fm_other": actors.fm2, "admin": actors.admin,
             "unrelated": actors.children, "outside_no_basis": make_user("staff", "houkatsu_oono", login="oono")}
    return Household(taro_case=taro_case, ichiro_case=ichiro_case, taro=taro, ichiro=ichiro,
                     household=household_id, hanako_member=hanako_id, users=users)
