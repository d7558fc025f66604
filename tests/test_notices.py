"""通知: a routing rule's `notify` departments are told of the case — in their inbox, with the case's metadata
and nothing of its content — and acknowledge it once; staff overriding the rules keep the notice; revision
0009 makes the notices that earlier routing decisions only wrote into the history."""
from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import select

from engine import access, case_departments, demo, migrate
from engine.alerts import notices
from engine.cases import intake, window
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.errors import ValidationFailed
from engine.models import AuditEvent, Case, CaseHistory, CaseNotice, Department, User
from engine.rules import store as rules
from tests.conftest import CONFIG_DIR, NOW, intake_fields
from tests.pages_support import app, count, text_of, web  # noqa: F401  (fixtures)
from tests.test_case_departments import fresh_url  # noqa: F401  (fixture)

EIGHTY_FIFTY = ["elder_care", "hikikomori"]  # demo rule 8050世帯: 高齢介護課 owns it, the station is told


def _notices(sessions, case_id):
    with sessions() as s:
        return [(n.department.code, n.reason, n.acknowledged_at is not None)
                for n in s.scalars(select(CaseNotice).where(CaseNotice.case_id == case_id).order_by(CaseNotice.id))]


def test_routing_tells_the_notify_departments_and_they_see_metadata_only(sessions, actors, open_case, web):
    case_id = open_case(categories=EIGHTY_FIFTY)
    [(code, reason, seen)] = _notices(sessions, case_id)
    assert code == "hikikomori_station" and "ひきこもり支援ステーションにも通知します" in reason and not seen
    with sessions() as s:
        case = s.get(Case, case_id)
        station = s.get(User, actors.hikikomori.id)
        assert access.NOTIFIED in access.relations(s, station, case)
        assert access.case_sight(s, station, case) == access.Sight.METADATA
        assert case_id in set(s.scalars(select(Case.id).where(access.visible_cases_filter(s, station))))
        assert case_id not in set(s.scalars(select(Case.id).where(access.content_cases_filter(s, station))))
        assert case_departments.drift(s) == []
        sent = s.scalar(select(CaseHistory).where(CaseHistory.case_id == case_id,
                                                  CaseHistory.event == "send_handoff"))
        assert sent.detail["notify"] == ["hikikomori_station"]
    client = web(actors.hikikomori)
    page = client.get(f"/cases/{case_id}")
    assert page.status_code == 200
    shown = text_of(page)
    assert "内容（本人の情報・相談内容・記録）は閲覧できません" in shown and "廿日 太郎" not in shown
    assert "通知先 はつかいちひきこもり支援ステーション（" in shown and "未確認" in shown


def test_the_notice_waits_in_the_inbox_until_acknowledged_once(sessions, actors, open_case, web):
    case_id = open_case(categories=EIGHTY_FIFTY)
    with sessions() as s:
        notice_id = s.scalar(select(CaseNotice.id).where(CaseNotice.case_id == case_id))
        number = s.get(Case, case_id).case_number
    client = web(actors.hikikomori)
    inbox = text_of(client.get("/inbox"))
    assert "他部署が担当するケースの通知" in inbox and number in inbox and "未定（高齢介護課に送付中）" in inbox
    assert "廿日 太郎" not in inbox  # no content of the case
    r = client.post(f"/inbox/notices/{notice_id}")
    assert r.status_code == 303
    after = text_of(client.get(r.headers["Location"]))
    assert "通知を確認しました" in after and "他部署が担当するケースの通知" not in after
    assert _notices(sessions, case_id)[0][2] is True
    assert count(sessions, AuditEvent, AuditEvent.action == "notice.acknowledge", AuditEvent.outcome == "ok") == 1
    assert count(sessions, CaseHistory, CaseHistory.event == "notice.acknowledge") == 1
    again = client.post(f"/inbox/notices/{notice_id}")
    assert again.status_code == 409 and "既に確認済みです" in text_of(again)
    assert count(sessions, CaseHistory, CaseHistory.event == "notice.acknowledge") == 1


def test_only_the_notified_department_may_acknowledge(sessions, actors, open_case, web):
    case_id = open_case(categories=EIGHTY_FIFTY)
    with sessions() as s:
        notice_id = s.scalar(select(CaseNotice.id).where(CaseNotice.case_id == case_id))
    for who in (actors.elderly, actors.window, actors.fm, actors.admin):
        assert web(who).post(f"/inbox/notices/{notice_id}").status_code == 404, who.login
    assert _notices(sessions, case_id)[0][2] is False
    assert count(sessions, AuditEvent, AuditEvent.outcome == "refused") == 4
    assert web(actors.hikikomori).post(f"/inbox/notices/{notice_id}", csrf=False).status_code == 400
    assert _notices(sessions, case_id)[0][2] is False


def test_staff_sending_elsewhere_than_the_rules_still_tell_the_rules_departments(sessions, actors):
    fields = intake_fields(categories=EIGHTY_FIFTY)
    with unit_of_work(sessions) as s:
        number, _ = rules.active_rules(s)
        case = window.confirm(s, s.get(User, actors.window.id), fields, mode="override", rule_version=number,
                              submission_token="t-override", to_department="livelihood",
                              override_reason="本人の希望で生活福祉課から", now=NOW)
        case_id = case.id
    [(code, reason, _)] = _notices(sessions, case_id)
    assert code == "hikikomori_station" and "8050" in reason  # the rule's reason, not the override's


def test_a_sender_may_name_departments_to_tell_and_an_unknown_one_is_refused(sessions, actors, open_case, fire):
    case_id = open_case(categories=["other"])  # unrouted: the desk sends it by hand
    with unit_of_work(sessions) as s:
        version = s.get(Case, case_id).version

    with pytest.raises(ValidationFailed) as exc:
        fire(actors.window, case_id, "send_handoff", to_department="livelihood", reason="r", summary="s",
             notify=["shakyo", "nowhere"])
    assert exc.value.errors == {"notify": ["「nowhere」という部署はありません。"]}
    with unit_of_work(sessions) as s:
        assert s.get(Case, case_id).version == version and s.scalars(select(CaseNotice)).all() == []
    fire(actors.window, case_id, "send_handoff", to_department="livelihood", reason="長男からの暴力の訴え",
         summary="s", notify=["health", "shakyo", "livelihood"])
    told = {code: reason for code, reason, _ in _notices(sessions, case_id)}
    assert set(told) == {"health", "shakyo"}  # the receiver is not also told
    # A person's つなぐ理由 may describe the person: the notice says only where the sheet went.
    assert "暴力" not in told["health"] and "生活福祉課" in told["health"]
    # A partner outside the city, with no basis for receiving the person's data, is told that there is a case.
    assert told["shakyo"] == notices.REASON_WITHHELD


def test_the_send_form_on_the_case_page_names_departments_to_tell(sessions, actors, open_case, web):
    case_id = open_case(categories=["other"])
    client = web(actors.window)
    page = client.get(f"/cases/{case_id}")
    assert 'name="notify"' in page.get_data(as_text=True)
    with sessions() as s:
        version = s.get(Case, case_id).version
    r = client.post(f"/cases/{case_id}/events/send_handoff", [
        ("version", str(version)), ("to_department", "livelihood"), ("reason", "家計の相談"),
        ("summary", "家賃の滞納"), ("notify", "shakyo"), ("notify", "children")])
    assert r.status_code == 303, text_of(r)[:3000]
    assert sorted(c for c, _, _ in _notices(sessions, case_id)) == ["children", "shakyo"]
    assert "他部署が担当するケースの通知" in text_of(web(actors.shakyo).get("/inbox"))


@pytest.mark.slow
def test_revision_0009_makes_the_notices_earlier_routing_only_wrote_down(fresh_url):  # noqa: F811
    migrate.upgrade(fresh_url)
    engine = make_engine(fresh_url)
    sessions = make_session_factory(engine)
    try:
        with unit_of_work(sessions) as s:
            demo.load_departments(s, CONFIG_DIR)
            rules.install_rules(s, CONFIG_DIR / "routing.yaml", loaded_by="test")
            clerk = User(login="w", display_name="w", role="staff", password_hash="x",
                          department_id=s.scalar(select(Department.id).where(Department.code == "desk")))
            s.add(clerk)
            s.flush()
            case_id = intake.open_case(s, clerk, intake_fields(categories=EIGHTY_FIFTY), now=NOW).id
        before = _notices(sessions, case_id)
        assert [c for c, _, _ in before] == ["hikikomori_station"]
        command.downgrade(migrate.alembic_config(fresh_url), "0008")
        migrate.upgrade(fresh_url)
        assert _notices(sessions, case_id) == before
        with sessions() as s:
            assert case_departments.drift(s) == []
    finally:
        engine.dispose()


def test_a_notice_leaves_the_inbox_once_its_department_owns_the_case(sessions, actors, open_case, fire):
    case_id = open_case(categories=EIGHTY_FIFTY)  # 高齢介護課 has the sheet, the station is told
    with sessions() as s:
        assert [n.case_id for n in notices.waiting(s, s.get(User, actors.hikikomori.id))] == [case_id]
    fire(actors.elderly, case_id, "decline_handoff", reason="ひきこもり支援が中心")
    fire(actors.window, case_id, "send_handoff", to_department="hikikomori_station", reason="r", summary="s")
    fire(actors.hikikomori, case_id, "accept_handoff")
    with sessions() as s:
        assert notices.waiting(s, s.get(User, actors.hikikomori.id)) == []
