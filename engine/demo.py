"""The Hatsukaichi demo set: departments, rules, a user per role and per department, sample cases.

Loading is idempotent: departments are upserted by code, users and rules are added only when missing or
changed, and the sample cases only once. Every sample case reaches its state by firing the real events.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import departments
from engine.cases import intake
from engine.cases.events import firing
from engine.models import Case, Department, RoutingRuleVersion, User, utcnow
from engine.rules.store import install_rules
from engine.users import accounts as users

DEMO_PASSWORD = "tsunagu-demo"
FM_LOGIN = "fm"
ADMIN_LOGIN = "admin"
WINDOW_LOGIN = "desk-staff"


def load_departments(session: Session, config_dir: Path) -> int:
    """Install config_dir's departments.yaml (engine.departments.install); return how many were added."""
    added, _ = departments.install(session, config_dir / "departments.yaml")
    return len(added)


def _user(session: Session, login: str, role: str, dept: str, name: str) -> User:
    existing = session.scalar(select(User).where(User.login == login))
    if existing is not None:
        return existing
    return users.create_user(session, None, login=login, role=role, department_code=dept, password=DEMO_PASSWORD,
                             display_name=name)


def load_users(session: Session) -> dict[str, User]:
    """A staff user for every department, plus the FM and the administrator."""
    out = {}
    for dept in session.scalars(select(Department).order_by(Department.id)):
        out[dept.code] = _user(session, f"{dept.code.replace('_', '-')}-staff", "staff", dept.code,
                               f"{dept.name} 職員")
    out["fm"] = _user(session, FM_LOGIN, "fm", "community_welfare", "宮島 FM（地域福祉課 係長）")
    out["admin"] = _user(session, ADMIN_LOGIN, "admin", "community_welfare", "システム管理者")
    return out


def _person(name, kana, birth, area, sex="unknown"):
    return {"name": name, "name_kana": kana, "birth_date": birth, "area": area, "sex": sex}


def load_sample_cases(session: Session, u: dict[str, User], now: datetime) -> int:
    """Fifteen cases over every state, each driven there by its events in order: among them an 8050 household
    whose son has a case of his own, and two records of what may be one person (a 名寄せ candidate)."""
    window = u["desk"]
    fm = u["fm"]

    def open_(days_ago, person, cats, summary, urgency="normal", household=None, source="window"):
        return intake.open_case(session, window, {
            "person": person, "categories": cats, "summary": summary, "urgency": urgency,
            "source": source, "household": household or [],
        }, now=now - timedelta(days=days_ago))

    def fire(case, actor, event, days_ago, **fields):
        firing.fire_event(session, actor, case.id, event, version=case.version, fields=fields,
                            now=now - timedelta(days=days_ago))

    today = now.date()
    made = []
    # 1. intake: no rule matches (only "other") → unrouted alert to the desk.
    made.append(open_(1, _person("佐伯 一郎", "サエキ イチロウ", date(1979, 3, 2), "佐伯", "male"), ["other"],
                      "近所の空き家に人が出入りしているとの相談。内容の整理が必要。"))
    # 2. handoff (normal), waiting on 佐伯地域包括: overdue by now, so a scan raises a stall alert.
    made.append(open_(9, _person("吉和 ハル", "ヨシワ ハル", date(1940, 8, 15), "佐伯", "female"), ["elder_care"],
                      "一人暮らし。最近物忘れが増え、買い物に困っている。"))
    # 3. handoff (urgent) to こども家庭課.
    made.append(open_(0, _person("大野 陽菜", "オオノ ヒナ", date(2012, 6, 1), "大野", "female"),
                      ["young_carer", "school_refusal"], "母の看病で学校を休みがち。本人から学校に相談。",
                      urgency="urgent"))
    # 4. assigned: 生活困窮 accepted by 生活福祉課.
    c = open_(20, _person("宮島 健", "ミヤジマ ケン", date(1968, 11, 20), "宮島", "male"), ["poverty", "debt"],
              "失職後に家賃と公共料金を滞納。")
    fire(c, u["livelihood"], "accept_handoff", 19)
    made.append(c)
    # 5. intake again after a decline (返送).
    c = open_(15, _person("廿日 市子", "ハツカ イチコ", date(1990, 1, 9), "廿日市", "female"), ["housing"],
              "住まいを探している。")
    fire(c, u["livelihood"], "decline_handoff", 14, reason="住宅の相談は住宅課の所管のため返送します。")
    made.append(c)
    # 6-11. the 8050 household path through 支援会議, consent, plan and evaluation, at different depths.
    eighty_fifty = []
    son = {"relationship": "長男", "name": "大野 一郎", "birth_year": 1972, "note": "長期のひきこもり",
           "resident_id": "0000100002"}
    for i, (name, kana, area) in enumerate([
        ("大野 花子", "オオノ ハナコ", "大野"), ("廿日 正", "ハツカ タダシ", "廿日市"),
        ("佐伯 トメ", "サエキ トメ", "佐伯"), ("吉和 文子", "ヨシワ フミコ", "吉和"),
        ("宮島 清", "ミヤジマ キヨシ", "宮島"), ("大野 幸子", "オオノ サチコ", "大野"),
    ]):
        c = open_(200 - i, _person(name, kana, date(1944 + i, 5, 1), area, "female"),
                  ["elder_care", "hikikomori"],
                  "80代の親と50代の子の二人世帯。介護サービス導入時に子の長期ひきこもりを把握。",
                  household=[son if i == 0 else {"relationship": "長男", "birth_year": 1972 + i,
                                                 "note": "長期のひきこもり"}])
        fire(c, u["elderly"], "accept_handoff", 198 - i)
        fire(c, fm, "convene_support_meeting", 190 - i,
             members=[{"user": "elderly-staff", "acknowledged": True},
                      {"user": "hikikomori-station-staff", "acknowledged": True}],
             minutes="長男の生活状況について各機関の把握内容を共有した。",
             decisions="アウトリーチを継続し、同意取得を目指す。")
        eighty_fifty.append(c)
    made.extend(eighty_fifty)
    stays, to_consent, to_layered, to_accomp, to_eval, to_suspend = eighty_fifty
    for c in (to_consent, to_layered, to_accomp, to_eval, to_suspend):
        fire(c, fm, "seek_consent", 180)
    for c in (to_layered, to_accomp, to_eval, to_suspend):
        fire(c, fm, "record_consent", 170, given_by="本人", method="written",
             agencies=["elderly", "hikikomori_station", "shakyo"])
    for c in (to_accomp, to_eval, to_suspend):
        fire(c, u["elderly"], "adopt_plan", 160, goals="「母の介護を続けながら、自分も少しずつ外に出たい」",
             roles=[{"department": "elderly", "role": "母の介護サービス調整"},
                    {"department": "hikikomori_station", "role": "長男への訪問・居場所の紹介"}],
             main_department="elderly", next_evaluation_date=(today + timedelta(days=30)).isoformat(),
             business_categories=["multi_agency", "outreach"])
    fire(to_eval, u["elderly"], "evaluate", 100, goals_met="partly", changes="長男が月1回居場所に参加。",
         decision="continue", next_evaluation_date=(today - timedelta(days=10)).isoformat())
    fire(to_suspend, u["elderly"], "evaluate", 90, goals_met="not_met", changes="本人の入院により中断。",
         decision="suspend")
    # 12. closed.
    c = open_(60, _person("廿日市 次郎", "ハツカイチ ジロウ", date(1985, 2, 2), "廿日市", "male"), ["income_work"],
              "就労の相談。")
    fire(c, u["livelihood"], "accept_handoff", 59)
    fire(c, u["livelihood"], "close", 30, close_reason="goal_met", note="就職が決まった。")
    made.append(c)
    # 13. the son of the first 8050 household comes to 生活福祉課 himself: the same 宛名番号, the same person,
    # and his case shows in his mother's household.
    c = open_(5, {**_person("大野 一郎", "オオノ イチロウ", date(1972, 3, 3), "大野", "male"),
                  "resident_id": "0000100002"}, ["poverty"], "母の年金で暮らしているが、今後の生活費が不安。")
    fire(c, u["livelihood"], "accept_handoff", 4)
    made.append(c)
    # 14-15. two windows, two ways of writing one name on the same birth date: a candidate for staff.
    made.append(open_(40, _person("髙橋 ミツ", "タカハシ ミツ", date(1938, 9, 9), "廿日市", "female"), ["health"],
                      "通院の付き添いがなく、受診が途切れている。"))
    made.append(open_(2, _person("高橋 ミツ", "タカハシ ミツ", date(1938, 9, 9), "廿日市", "female"), ["isolation"],
                      "近所の人から、最近姿を見かけないとの連絡。"))
    return len(made)


def load(session: Session, config_dir: Path, now: datetime | None = None) -> dict[str, int]:
    """Load everything; safe to run again (nothing doubles)."""
    now = now or utcnow()
    added_departments = load_departments(session, config_dir)
    u = load_users(session)
    # The demo's rules only where none are in force: an operator's own (`rules load`) stay.
    new_rules = False
    if session.scalar(select(RoutingRuleVersion.id).limit(1)) is None:
        _, new_rules = install_rules(session, config_dir / "routing.yaml", loaded_by="demo")
    cases = 0
    window = u["desk"]
    if session.scalar(select(Case.id).where(Case.created_by_id == window.id).limit(1)) is None:
        cases = load_sample_cases(session, u, now)
    session.flush()
    return {"departments": added_departments, "rules_installed": int(new_rules), "cases": cases,
            "staff": sum(1 for user in u.values() if user.role == "staff")}
