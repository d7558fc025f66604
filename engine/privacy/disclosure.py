"""開示請求: who looked at this person's record — the audit rows of every case of the same person, and the
reads of the records of every meeting that discussed one of those cases (a meeting held on a member of the
household's case that took theirs up too)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import literal_column, or_, select
from sqlalchemy.orm import Session

from engine import access, calendar, spreadsheet, states
from engine.audit import trail
from engine.errors import NotFound
from engine.models import ApiClient, AuditEvent, Case, Department, Meeting, MeetingCase, Person, User
from engine.sharing import provisions

ACTION_LABELS = {
    "case.open": "相談の受付",
    "report.read": "年度集計の閲覧",
    "participation.add": "参加支援の記録",
    "participation.end": "参加支援の終了の記録",
    "referral.read": "紹介元システムによる状況の照会",
    "referral.replay": "紹介元システムの再送（最初の応答を返した）",
    "case.export": "ケースの書き出し（氏名・要約を含む一括の書き出し）",
    "cases.export": "ケースの一括書き出し",
    "referrals.export": "紹介元への紹介の状況の一括書き出し",
    "watch_report.read": "見守り通報の受付の照会（通報元による）",
    "case.read": "ケース記録の閲覧",
    "case.found": "一覧・検索結果への氏名の表示",
    "handoff_sheet.read": "つなぐシートの閲覧",
    "case.amend": "ケース記録の修正",
    "case.anonymise": "保存期間経過による匿名化",
    "case_content.read": "本人・世帯情報の閲覧",
    "consent.read": "同意記録の閲覧",
    "plan.read": "支援プランの閲覧",
    "contact_notes.read": "支援経過記録の閲覧",
    "shared_facts.read": "共有情報の閲覧",
    "meeting.read": "会議記録の閲覧",
    "meeting.record_minutes": "会議記録の作成",
    "meeting.append_record": "会議記録への追記",
    "meeting.add_member": "会議構成員の追加",
    "meeting.record_layered": "重層的支援会議の記録",
    "meeting.acknowledge_secrecy": "守秘義務の確認",
    "meeting.discuss_case": "会議での検討（他のケースの会議で併せて検討）",
    "contact_note.add": "支援経過の記録",
    "shared_fact.carry": "支援会議の情報の共有（同意に基づく）",
    "handoff.request_join": "参加依頼の送付",
    "handoff.accept": "参加依頼の受理",
    "handoff.decline": "参加依頼の返送",
    "handoff.withdraw": "参加依頼の取り下げ",
    "notice.acknowledge": "通知の確認",
    "join_offer.offer": "参加の申し出",
    "meeting.request": "支援会議の開催の依頼（FMへ）",
    "join_offer.accept": "参加の申し出への参加依頼",
    "join_offer.decline": "参加の申し出の見送り",
    "join_offer.withdraw": "参加の申し出の取下げ",
    "alert.read": "アラート（返送の理由）の閲覧",
    "alert.acknowledge": "アラートの確認",
    "alert.resolve": "アラートの解決",
    "audit.person_trail": "閲覧記録の開示",
    "case.routing_override": "振り分けの提案と異なる部署への送付",
    "handoff.reassign": "つなぐシートの振り替え（FM）",
    "login": "ログイン",
    "logout": "ログアウト",
    "login.failed": "ログインの失敗",
    "login.locked": "失敗の繰り返しによるアカウントのロック",
    "login.throttled": "試行回数の超過によるログインの制限",
    "user.add": "職員アカウントの追加",
    "user.disable": "職員アカウントの停止",
    "user.enable": "職員アカウントの再開",
    "password.change": "パスワードの変更",
    "password.reset": "パスワードの再設定（管理者・運用者）",
    "api_token.create": "連携システムのトークンの発行",
    "api_token.revoke": "連携システムのトークンの失効",
    "webhook.register": "連携システムの通知先（Webhook）の登録",
    "rules.load": "振り分けルールの登録",
    "departments.load": "部署・機関（委託の範囲）の登録",
    "person.merge": "同一人物の記録の統合（名寄せ）",
    "person.unmerge": "記録の統合の取り消し",
    "person.candidate_confirm": "名寄せの候補を同一人物と確認",
    "person.candidate_reject": "名寄せの候補を別人と判断",
    "person.read": "本人の記録（世帯・ケース）の閲覧",
    "household.add_member": "世帯員の追加",
    "household.end_member": "世帯員の転出・死亡などの記録",
    "consent.record": "同意の記録（相談の受付時）",
    "provision.sheet": "市の外の機関への提供（つなぐシート）",
    "provision.join": "市の外の機関への提供（参加依頼）",
    "provision.meeting": "市の外の機関への提供（支援会議の記録）",
    "provision.fact": "市の外の機関への提供（支援会議から共有した情報）",
    "provision.notice": "市の外の機関への提供（通知の内容）",
    "provision.plan_role": "市の外の機関への提供（支援プランの役割）",
    "database.backup": "データベースのバックアップの作成",
}
OUTCOME_LABELS = {"ok": "実施", "refused": "拒否"}  # done, or refused (and recorded as such)
# A refused page request is recorded as "page.<the page's endpoint>".
PAGE_LABELS = {
    "cases.detail": "ケース詳細の表示", "cases.fire": "ケースの操作", "cases.sheet": "つなぐシートの印刷",
    "cases.request_join": "参加依頼の送付", "cases.withdraw_join": "参加依頼の取下げ", "cases.amend": "内容の修正",
    "cases.add_note": "支援経過の記録", "cases.offer_join": "参加の申し出", "cases.answer_offer": "参加の申し出への回答",
    "cases.withdraw_offer": "参加の申し出の取下げ", "cases.ask_meeting": "支援会議の開催の依頼",
    "meetings.show": "会議の表示", "meetings.acknowledge": "守秘義務の確認",
    "meetings.append": "会議記録への追記", "meetings.carry": "支援会議の情報の共有", "inbox.answer": "受信箱での回答",
    "inbox.acknowledge_notice": "通知の確認", "dashboard.act": "FMダッシュボードでのアラート処理",
    "intake.submit": "相談受付", "admin.disclosure_page": "閲覧記録の開示", "admin.disclosure_csv": "閲覧記録の開示（CSV）",
    "admin.index": "管理画面の表示", "admin.disable_user": "職員アカウントの停止",
    "admin.enable_user": "職員アカウントの再開",
    "admin.add_user": "職員アカウントの追加", "admin.reset_password": "パスワードの再設定",
    "admin.revoke_client": "連携システムのトークンの失効", "auth.login": "ログイン", "auth.logout": "ログアウト",
    "auth.password": "パスワードの変更",
    "cases.index": "トップページの表示", "cases.list_cases": "ケース一覧の表示", "dashboard.show": "FMダッシュボードの表示",
    "inbox.show": "部署の受信箱の表示", "intake.new": "相談受付画面の表示",
    "cases.redirect_handoff": "つなぐシートの送付先の変更", "inbox.act_on_alert": "受信箱でのお知らせの処理",
    "meetings.add_member": "会議構成員の追加", "reports.show": "年度集計の表示", "cases.add_match": "参加支援の記録", "cases.end_match": "参加支援の終了の記録", "reports.as_csv": "年度集計の保存（CSV）",
    "reports.as_xlsx": "年度集計の保存（Excel）", "rules.show": "振り分けルールの表示",
    "people.show": "本人の記録の表示", "people.decide": "名寄せの候補の判断", "people.merge": "記録の統合",
    "people.unmerge": "記録の統合の取り消し", "people.add_member": "世帯員の追加",
    "people.end_member": "世帯員の転出・死亡などの記録", "people.add_first_member": "世帯員の追加（世帯の記録の作成）",
}


def action_label(action: str) -> str:
    """The Japanese name of an audited action (the code itself when unknown)."""
    if action in ACTION_LABELS:
        return ACTION_LABELS[action]
    if action.startswith("page."):
        return f"{PAGE_LABELS.get(action[5:], '画面の操作')}（画面）"
    if action.startswith("api "):
        return f"連携システムからの操作（{action[4:]}）"
    if action.startswith("case.") and action[5:] in states.CASE_EVENT_LABELS:
        return states.CASE_EVENT_LABELS[action[5:]]
    if action.endswith(".read"):
        return "閲覧"
    return action


# The answer as CSV, for the person and for the city's records: the time as ISO 8601 (sortable, as the
# trail stores it) and, last, as a person reads it (和暦, JST).
CSV_HEADER = ["日時", "ケース番号", "操作者", "氏名", "所属", "操作", "操作コード", "結果", "接続元", "連携システム",
              "日時（和暦）"]


def csv_row(r: "TrailRow") -> list[str]:
    """One line of the CSV answer (CSV_HEADER's columns), each cell safe to open in a spreadsheet."""
    return spreadsheet.row([
        r.at.astimezone(calendar.JST).isoformat(timespec="seconds"), r.case_number or "", r.actor, r.actor_name,
        r.department, r.action_label, r.action, r.outcome, r.remote_addr or "", r.client or "",
        calendar.wareki_datetime(r.at)])


@dataclass
class TrailRow:
    """One line of the answer: who did what to which case, when and from where."""

    seq: int
    at: datetime
    case_number: str | None
    actor: str        # login, client:NAME or system
    actor_name: str   # display name, if a staff user
    department: str   # the user's department, if a staff user
    action: str
    action_label: str
    outcome: str
    remote_addr: str | None
    client: str | None


def find_case(session: Session, ref: str) -> Case:
    """A case by its number (R8-000123) or its id."""
    ref = (ref or "").strip()
    case = session.scalar(select(Case).where(Case.case_number == ref.upper()))
    if case is None and ref.isascii() and ref.isdigit() and int(ref) < 2 ** 31:  # an id; a longer number is none
        case = session.get(Case, int(ref))
    if case is None:
        raise NotFound(f"ケース「{ref}」は見つかりません。")
    return case


def person_trail(session: Session, ref: str, *, requested_by: str = "cli",
                 actor=None) -> tuple[list[Case], list[TrailRow]]:
    """The cases of the person of case `ref` (one record per person: engine.people) and every audit row
    about them or about the person's record (reads of it through the API, merges), oldest first. The answer
    itself is recorded in the trail (`audit.person_trail`).

    From a page, `actor` is the signed-in user: only an admin may ask (PermissionDenied otherwise), and
    the answer is recorded under their name.
    """
    if actor is not None:
        access.require_admin(actor, "閲覧記録（開示請求）を調べられるのは管理者だけです。")
    case = find_case(session, ref)
    # One record per person (名寄せ): the cases of a record merged into this one moved to it.
    cases = list(session.scalars(select(Case).where(Case.person_id == case.person_id).order_by(Case.id)))
    numbers = {c.id: c.case_number for c in cases}
    users: dict[int, User | None] = {}
    clients: dict[int, ApiClient | None] = {}
    rows = []
    # Reads of the person's record (GET /people, its refusals, merges) name the person, not a case: theirs,
    # and those of the records merged into theirs.
    people = {case.person_id}
    while True:
        more = set(session.scalars(select(Person.id).where(Person.merged_into_id.in_(people)))) - people
        if not more:
            break
        people |= more
    rows_of_trail = select(AuditEvent).where(or_(
        AuditEvent.case_id.in_(numbers),
        # The constant as written in the partial index ix_audit_events_person, so that the planner uses it.
        (AuditEvent.object_type == literal_column("'person'")) & AuditEvent.object_id.in_([str(i) for i in people]),
    )).order_by(AuditEvent.seq)
    events = [(ev, False) for ev in session.scalars(rows_of_trail)]
    seen = {ev.seq for ev, _ in events}
    events += [(ev, True) for ev in reads_of_meetings_discussing(session, list(numbers)) if ev.seq not in seen]
    for ev, via_meeting in sorted(events, key=lambda e: e[0].seq):
        user = users.setdefault(ev.actor_id, session.get(User, ev.actor_id)) if ev.actor_id else None
        client = (clients.setdefault(ev.client_id, session.get(ApiClient, ev.client_id))
                  if ev.client_id else None)
        dept = session.get(Department, user.department_id) if user is not None else None
        rows.append(TrailRow(
            # A read of a meeting held on another person's case: that case is not named to this person.
            seq=ev.seq, at=ev.at, case_number="" if via_meeting else numbers.get(ev.case_id),
            actor=ev.actor_label, actor_name=user.display_name if user else "",
            department=dept.name if dept else "", action=ev.action,
            action_label=action_label(ev.action) + (VIA_MEETING if via_meeting else ""),
            outcome=OUTCOME_LABELS.get(ev.outcome, ev.outcome), remote_addr=ev.remote_addr,
            client=client.name if client else None,
        ))
    trail.record(session, actor=actor, actor_label=None if actor is not None else requested_by,
                 action="audit.person_trail",
                 object_type="case", object_id=case.id, case_id=case.id,
                 detail={"cases": len(cases), "rows": len(rows)})
    session.flush()
    return cases, rows


VIA_MEETING = "（本人のケースを併せて検討した会議の記録）"


def reads_of_meetings_discussing(session: Session, case_ids: list[int]) -> list[AuditEvent]:
    """The reads of the records of every meeting that discussed one of `case_ids`, made under another case:
    its page (`meeting.read`, on the case it was held on) or a case page that showed its records
    (`case.read` naming it). The reads under `case_ids` themselves are not repeated."""
    meeting_ids = set(session.scalars(select(MeetingCase.meeting_id).where(MeetingCase.case_id.in_(case_ids))))
    if not meeting_ids:
        return []
    # Read by the case id's index: every such row is about a case these meetings discussed.
    their_cases = select(MeetingCase.case_id).where(MeetingCase.meeting_id.in_(meeting_ids))
    held_on = select(Meeting.case_id).where(Meeting.id.in_(meeting_ids))
    found = []
    for ev in session.scalars(select(AuditEvent).where(
            or_(AuditEvent.case_id.in_(their_cases), AuditEvent.case_id.in_(held_on)),
            AuditEvent.case_id.not_in(case_ids), AuditEvent.action.in_(("meeting.read", "case.read")))
            .order_by(AuditEvent.seq)):
        if ev.action == "meeting.read":
            hit = ev.object_type == "meeting" and ev.object_id is not None and ev.object_id.isdigit() \
                and int(ev.object_id) in meeting_ids
        else:
            hit = bool(meeting_ids.intersection((ev.detail or {}).get("meetings") or []))
        if hit:
            found.append(ev)
    return found


def provided_to(session: Session, cases: list[Case]) -> list[provisions.ProvisionRow]:
    """For the same answer: every body outside the city that received the person's data, what, when, by whom
    and on which basis (提供記録), oldest first."""
    return provisions.of_case(session, [c.id for c in cases])
