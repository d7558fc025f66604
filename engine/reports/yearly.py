"""年度集計: the yearly figures the city reports (DESIGN.md, "What the city must be able to report").

Counts only, per fiscal year (April 1 to March 31, JST): consultations received, and beside them the people
and households they come from (engine.reports.people), つなぐシート sent, answered and stalled, cases by
事業区分, 支援決定 and plan versions, evaluations, contacts by method, meetings and the cases they discussed,
参加支援 matches by 協力事業者, closures by reason; and broken down (engine.reports.breakdowns), consultations
by 圏域 and by month, つなぐシート and cases by department. Every coded row is labelled
from the code lists in config/, and every code of a list is shown, with 0 where nothing was recorded, so
that a year's table has the same rows as the next one's.

No name, number or text of a case reaches the report, so FMs and administrators read it whatever their
meeting memberships; each read is audited as `report.read`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import calendar, vocab
from engine.audit import trail
from engine.errors import PermissionDenied, ValidationFailed
from engine.models import (
    Alert,
    Case,
    CaseCategory,
    CaseHistory,
    ContactNote,
    Evaluation,
    Handoff,
    Meeting,
    MeetingCase,
    ParticipationMatch,
    Plan,
    utcnow,
)
from engine.reports import breakdowns, people

FIRST_FISCAL_YEAR = 2019  # 令和元年度: the years offered are 令和 years
MEETING_KINDS = {"support_meeting": "支援会議", "layered_meeting": "重層的支援会議"}
UNCODED = "（未設定）"


@dataclass(frozen=True)
class Row:
    label: str
    count: int


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    note: str = ""

    def add(self, label: str, count: int) -> None:
        self.rows.append(Row(label, int(count or 0)))


@dataclass(frozen=True)
class Figure:
    """One of the figures the page sets side by side at the top (相談・人・世帯)."""

    label: str
    count: int
    unit: str


@dataclass
class YearlyReport:
    fiscal_year: int
    label: str  # 令和8年度
    starts: date
    ends: date  # the last day
    sections: list[Section]
    headline: list[Figure] = field(default_factory=list)

    def csv_rows(self) -> list[tuple[str, str, int]]:
        return [(s.title, r.label, r.count) for s in self.sections for r in s.rows]


def fiscal_year_label(fiscal_year: int) -> str:
    n = calendar.reiwa_year(fiscal_year)
    return f"令和{'元' if n == 1 else n}年度"


def offered_years(today: date | None = None) -> list[tuple[int, str]]:
    """The fiscal years a person may pick, newest first: from 令和元年度 to the current one."""
    current = calendar.fiscal_year(today or utcnow().astimezone(calendar.JST).date())
    return [(y, fiscal_year_label(y)) for y in range(current, FIRST_FISCAL_YEAR - 1, -1)]


def parse_fiscal_year(value: str | None, today: date | None = None) -> int:
    """The `year` of a request (西暦 of the year's April); the current fiscal year when absent."""
    years = [y for y, _ in offered_years(today)]
    if value is None or value == "":
        return years[0]
    if not value.isascii() or not value.isdigit() or int(value) not in years:
        raise ValidationFailed({"year": [
            f"年度は、その年度が始まる4月の西暦の年を4桁の数字で指定してください（例: {fiscal_year_label(years[0])}は "
            f"{years[0]}）。選べるのは{fiscal_year_label(years[-1])}（{years[-1]}）から"
            f"{fiscal_year_label(years[0])}（{years[0]}）までです。"]})
    return int(value)


def require_reader(actor) -> None:
    if actor is None or not actor.active or actor.role not in ("fm", "admin"):
        raise PermissionDenied("年度集計を見られるのはFMと管理者だけです。")


def _coded(section: Section, labels: dict[str, str], counts: Counter, *, prefix: str = "",
           suffix: str = "") -> None:
    """A row for every code of the list, then one for each code met that the list no longer holds.

    `counts` is consumed. A row with no code at all reads 未設定."""
    for code, label in labels.items():
        section.add(f"{prefix}{label}{suffix}", counts.pop(code, 0))
    for code, count in sorted(counts.items(), key=lambda kv: str(kv[0])):  # codes since removed from a list
        section.add(f"{prefix}{UNCODED if code is None else f'{code}（コード表にないコード）'}{suffix}", count)


def _grouped(session: Session, column, *where) -> Counter:
    return Counter(dict(session.execute(select(column, func.count()).where(*where).group_by(column)).all()))


def _breakdown_sections(b: breakdowns.Breakdowns) -> list[Section]:
    by_area = Section("圏域別 相談受付", note="この年度に受け付けた相談（ケース）を、本人の記録にいま書かれている圏域で数える。")
    _coded(by_area, vocab.codes("areas"), Counter(b.consultations_by_area))
    by_month = Section("月別 相談受付・つなぐシート", note="この年度に受け付けた相談と、送付したつなぐシート（参加依頼を含む）を月ごとに。")
    for month, count in zip(b.months, b.consultations_by_month):
        by_month.add(f"{month} 新規相談", count)
    for month, count in zip(b.months, b.sheets_by_month):
        by_month.add(f"{month} つなぐシート送付", count)
    sheets = Section("部署別 受け取ったつなぐシート", note="この年度に送付されたつなぐシート（参加依頼を含む）を、送付先の部署ごとに。")
    cases = Section("部署別 担当ケース", note="この年度に一日でも支援中だったケースを、いまの担当部署ごとに。")
    for department_id, name in b.departments:
        sheets.add(name, b.sheets_by_department.get(department_id, 0))
        cases.add(name, b.cases_by_department.get(department_id, 0))
    cases.add("担当部署未決定", b.cases_by_department.get(None, 0))
    return [by_area, by_month, sheets, cases]


def yearly(session: Session, actor, fiscal_year: int, *, remote_addr: str | None = None,
           today: date | None = None) -> YearlyReport:
    """The figures of one fiscal year (西暦 of its April); the households as of its last day, or of `today`
    (by default the day in Japan) while it runs."""
    require_reader(actor)
    today = today or utcnow().astimezone(calendar.JST).date()
    starts, next_start = date(fiscal_year, 4, 1), date(fiscal_year + 1, 4, 1)
    # Times are stored in UTC; the year runs from April 1 00:00 to the next April 1 00:00 in Japan.
    t0 = datetime.combine(starts, time(0), tzinfo=calendar.JST)
    t1 = datetime.combine(next_start, time(0), tzinfo=calendar.JST)

    def during(column):
        return (column >= t0, column < t1)

    def on_days(column):
        return (column >= starts, column < next_start)

    sections = []

    intake = Section("相談受付", note="この年度に受け付けた相談（ケース）の数。")
    intake.add("新規相談 計", session.scalar(select(func.count()).select_from(Case).where(*during(Case.opened_at))))
    _coded(intake, vocab.codes("sources"), _grouped(session, Case.source, *during(Case.opened_at)),
           prefix="受付経路: ")
    primary = Counter(dict(session.execute(
        select(CaseCategory.code, func.count()).join(Case, Case.id == CaseCategory.case_id)
        .where(CaseCategory.primary.is_(True), *during(Case.opened_at)).group_by(CaseCategory.code)).all()))
    _coded(intake, vocab.codes("issue_categories"), primary, prefix="主な課題: ")
    sections.append(intake)

    who = people.figures(session, fiscal_year, today=today)
    side = Section("相談・人・世帯", note=(
        "相談はこの年度に受け付けたケース、人はその相談の本人（同じ人の相談は、記録を統合した後の1人として数える）。"
        f"世帯は{calendar.wareki(who.as_of)}時点の世帯員と、その時点で終結していないケースで数える。"
        "複合課題の世帯は、世帯員のケースの課題を合わせると、振り分けルールの多機関協働の組み合わせに当たる世帯。"))
    side.add("相談（この年度に受け付けたケース）", who.consultations)
    side.add("人（相談の本人）", who.people)
    side.add("うち、この年度に初めて記録された人", who.new_people)
    side.add("支援中のケースが2件以上ある世帯", who.households_with_several)
    for name, count in who.households_by_set:
        side.add(f"複合課題の世帯: {name}", count)
    sections.append(side)
    headline = [Figure("相談", who.consultations, "件"), Figure("人", who.people, "人"),
                Figure("支援中のケースが2件以上ある世帯", who.households_with_several, "世帯")]

    sheets = Section("つなぐシート", note="参加依頼を含む。受理・返送・期限超過はこの年度に起きたもの。")
    sheets.add("送付", session.scalar(select(func.count()).select_from(Handoff).where(*during(Handoff.sent_at))))
    sheets.add("受理", session.scalar(select(func.count()).select_from(Handoff).where(*during(Handoff.accepted_at))))
    answered = _grouped(session, Handoff.state, *during(Handoff.sent_at))
    sheets.add("返送（この年度に送付したもの）", answered.get("declined", 0))
    sheets.add("未受理のまま（この年度に送付したもの）", answered.get("sent", 0))
    alerts = _grouped(session, Alert.kind, Alert.kind.in_(("handoff_stalled", "handoff_escalated", "unrouted")),
                      *during(Alert.raised_at))
    sheets.add("受理期限超過のアラート", alerts.get("handoff_stalled", 0))
    sheets.add("FMへのエスカレーション", alerts.get("handoff_escalated", 0))
    sheets.add("担当部署未決定のアラート", alerts.get("unrouted", 0))
    sections.append(sheets)

    business = Section("事業区分", note="この年度に一日でも支援中だったケースの数（一つのケースが複数の区分に数えられることがある）と、"
                                      "この年度の接触記録の数。")
    active = select(Case.business_categories).where(
        Case.opened_at < t1, (Case.closed_at.is_(None)) | (Case.closed_at >= t0))
    by_case: Counter = Counter()
    for codes in session.scalars(active.execution_options(yield_per=2000)):
        by_case.update(set(codes or []))
    activities = _grouped(session, ContactNote.business_category, *on_days(ContactNote.contact_on))
    kinds = vocab.codes("business_categories")
    _coded(business, kinds, by_case, suffix="（ケース）")
    unmarked = activities.pop(None, 0)
    _coded(business, kinds, activities, suffix="（接触記録）")
    business.add("区分なし（接触記録）", unmarked)
    sections.append(business)

    plans = Section("支援決定・支援プラン", note="支援決定は、重層的支援会議がプランを決定した日（支援決定日）で数える。"
                                              "再開後の最初のプランは初回に数える。")
    earlier = Plan.__table__.alias("earlier")
    replan = select(earlier.c.id).where(earlier.c.case_id == Plan.case_id, earlier.c.number == Plan.number - 1,
                                        earlier.c.status == "superseded").exists()
    versions = _grouped(session, replan, *on_days(Plan.decided_on))
    plans.add("支援決定 計", sum(versions.values()))
    plans.add("支援決定（初回のプラン）", versions.get(False, 0))
    plans.add("支援決定（再プラン）", versions.get(True, 0))
    decisions = _grouped(session, Evaluation.decision, *on_days(Evaluation.evaluated_on))
    plans.add("評価 計", sum(decisions.values()))
    _coded(plans, vocab.codes("evaluation_decisions"), decisions, prefix="評価の結果: ")
    sections.append(plans)

    contacts = Section("接触記録（支援経過）", note="支援会議の記録として残したものを含む。")
    methods = _grouped(session, ContactNote.method, *on_days(ContactNote.contact_on))
    contacts.add("計", sum(methods.values()))
    _coded(contacts, vocab.codes("contact_methods"), methods)
    sections.append(contacts)

    meetings = Section("会議")
    held = _grouped(session, Meeting.kind, *during(Meeting.held_at))
    discussed = Counter(dict(session.execute(
        select(Meeting.kind, func.count(func.distinct(MeetingCase.case_id)))
        .join(MeetingCase, MeetingCase.meeting_id == Meeting.id)
        .where(*during(Meeting.held_at)).group_by(Meeting.kind)).all()))
    for kind, label in MEETING_KINDS.items():
        meetings.add(f"{label} 開催", held.get(kind, 0))
        meetings.add(f"{label} 検討したケース", discussed.get(kind, 0))
    sections.append(meetings)

    participation = Section("参加支援", note="この年度に始まったマッチング。協力事業者ごと。")
    hosts = _grouped(session, ParticipationMatch.host, *on_days(ParticipationMatch.started_on))
    participation.add("マッチング 計", sum(hosts.values()))
    _coded(participation, vocab.codes("participation_hosts"), hosts, prefix="協力事業者: ")
    sections.append(participation)

    closures = Section("終結", note="この年度の終結（のちに再開したケースの終結も数える）。")
    # From the history, so that a case closed and reopened since is still counted for the year it closed.
    reasons = Counter(
        (detail or {}).get("close_reason") or current
        for detail, current in session.execute(
            select(CaseHistory.detail, Case.close_reason).join(Case, Case.id == CaseHistory.case_id)
            .where(CaseHistory.to_state == "closed", CaseHistory.from_state != "closed", *during(CaseHistory.at))))
    closures.add("計", sum(reasons.values()))
    _coded(closures, vocab.codes("close_reasons"), reasons)
    sections.append(closures)

    sections.extend(_breakdown_sections(breakdowns.breakdowns(session, fiscal_year)))

    trail.record(session, actor=actor, action="report.read", object_type="report", object_id=fiscal_year,
                 detail={"fiscal_year": fiscal_year}, remote_addr=remote_addr)
    return YearlyReport(fiscal_year, fiscal_year_label(fiscal_year), starts, date(fiscal_year + 1, 3, 31), sections,
                        headline=headline)
