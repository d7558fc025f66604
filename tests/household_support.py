"""A household for the tests of meetings that discuss several cases: a mother (高齢・介護, owned by 高齢介護課)
whose consultation listed her son with his 宛名番号, and the son's own consultation (ひきこもり, owned by the
ひきこもり支援ステーション), whose consent names the station, 地域福祉課 (the FMs' department) and 高齢介護課.
Nobody else relates to the son's case."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.db import unit_of_work
from engine.models import Case

MOTHER = {"name": "廿日 ハナ", "name_kana": "ハツカ ハナ", "birth_date": None, "area": "廿日市",
          "resident_id": "H-0001"}
SON = {"name": "廿日 一郎", "name_kana": "ハツカ イチロウ", "birth_date": "1974-04-01", "area": "廿日市",
       "resident_id": "H-0002"}
SON_CONSENT = {"given_by": "本人", "method": "written",
               "agencies": ["hikikomori_station", "community_welfare", "elderly"]}


@dataclass
class Household:
    mother: int
    son: int
    mother_number: str
    son_number: str


@pytest.fixture
def household(open_case, fire, actors, sessions) -> Household:
    mother = open_case(person=MOTHER, categories=["elder_care"], summary="母の介護サービスの相談。",
                       household=[{"relationship": "長男", "name": SON["name"], "birth_year": 1974,
                                   "resident_id": SON["resident_id"]}])
    fire(actors.elderly, mother, "accept_handoff")
    son = open_case(person=SON, categories=["hikikomori"], summary="長男SECRET-長期のひきこもり。")
    fire(actors.hikikomori, son, "accept_handoff")
    fire(actors.hikikomori, son, "record_consent", **SON_CONSENT)
    with unit_of_work(sessions) as s:
        return Household(mother=mother, son=son, mother_number=s.get(Case, mother).case_number,
                         son_number=s.get(Case, son).case_number)
