"""On which basis a body outside the city may receive a person's data (個人情報保護法69条, 社会福祉法106条の6).

The city's own sections share as the work needs (69条2項2号・3号). A body outside the city — an outside agency
(委託・指定の相談機関) or a partner (協定企業・団体) — receives a case's data only on one of these bases, checked
by the engine at every outward share (a つなぐシート, a join request, a notice's text, a fact carried over, a plan
role) and recorded with it (engine.sharing.provisions):

- a commission (委託, 66条2項) for that very work: config/departments.yaml names the issue categories the work
  covers; a case with one of them (and, where both are known, in one of the body's areas) is within it;
- a consent in force that names the body (69条2項1号): the case's newest consent record, if it is a given one;
- membership of a 支援会議 (社会福祉法106条の6): for that meeting's records only;
- a statute or an emergency (虐待防止法の通報, 要保護児童対策地域協議会, life or body at risk when consent cannot be
  had: 69条2項4号), chosen from config/categories.yaml `sharing_bases` by an FM or the desk, with a note.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import vocab
from engine.access.relations import current_given_consent
from engine.departments import DESK_CODE, department_by_code
from engine.errors import GuardRefused, PermissionDenied, ValidationFailed
from engine.models import Case, Consent, Department, Provision

BASIS_LABELS = {
    "inside_city": "市の組織内での共有",
    "commission": "委託（個人情報保護法66条2項）",
    "consent": "本人の同意（個人情報保護法69条2項1号）",
    "support_meeting": "支援会議の構成員（社会福祉法106条の6）",
    "statute": "法令・緊急（個人情報保護法69条2項）",
}
# Who may choose a statute or an emergency as the basis: an FM, and the desk (相談まるごとサポートデスク).
MAY_NOT_CHOOSE = "法令・緊急の根拠を選べるのは、FMと相談まるごとサポートデスクの職員だけです。"


@dataclass(frozen=True)
class Basis:
    """A basis for giving a body a case's data: its kind (BASIS_LABELS) and what it rests on."""

    kind: str
    code: str | None = None  # statute: a code of config/categories.yaml sharing_bases
    note: str | None = None  # statute: why it applies here
    consent_id: int | None = None
    meeting_id: int | None = None
    commission_work: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "statute" and self.code:
            return vocab.label("sharing_bases", self.code)
        return BASIS_LABELS[self.kind]


def commission_covers(department: Department, case: Case) -> bool:
    """Whether the body's commission covers the case: one of the case's categories, and its area (when both
    the case's area and the body's areas are known)."""
    return commission_covers_facts(department, case.category_codes, case.person.area)


def commission_covers_facts(department: Department, categories, area: str | None) -> bool:
    """commission_covers for a consultation not recorded yet (its categories and area)."""
    covered = set(department.commission_categories or ())
    if not department.commission_work or not covered & set(categories):
        return False
    return not (area and department.areas) or area in department.areas


def consent_naming(session: Session, case: Case, department: Department) -> Consent | None:
    """The consent in force, if it names the body."""
    consent = current_given_consent(session, case.id)
    if consent is not None and any(a.department_id == department.id for a in consent.agencies):
        return consent
    return None


def statute_recorded(session: Session, case: Case, department: Department) -> Basis | None:
    """A statute or an emergency chosen earlier for giving this body the case's data: it stays its basis."""
    row = session.scalars(select(Provision).where(
        Provision.case_id == case.id, Provision.department_id == department.id, Provision.basis == "statute")
        .order_by(Provision.id.desc()).limit(1)).first()
    if row is None:
        return None
    return Basis("statute", code=row.basis_code, note=row.basis_note)


def standing_basis(session: Session, case: Case, department: Department, *,
                   consent: bool = True) -> Basis | None:
    """The basis on which `department` may receive the case's data now, if any (a city section: always).

    With `consent=False` the consent is left out: what would remain if it ended (a withdrawal, or a consent
    recorded anew that does not name the body)."""
    if not department.outside_city:
        return Basis("inside_city")
    if commission_covers(department, case):
        return Basis("commission", commission_work=department.commission_work)
    if consent:
        given = consent_naming(session, case, department)
        if given is not None:
            return Basis("consent", consent_id=given.id)
    return statute_recorded(session, case, department)


def may_choose(session: Session, actor) -> bool:
    """Whether `actor` may choose a statute or an emergency as a basis: an FM, or staff of the desk."""
    if getattr(actor, "role", None) == "fm":
        return True
    desk = department_by_code(session, DESK_CODE)
    return getattr(actor, "role", None) == "staff" and desk is not None and actor.department_id == desk.id


def chosen_basis(session: Session, actor, given, *, field: str = "basis") -> Basis | None:
    """The statute or emergency an FM or the desk chose (`given`: {code, note}), checked; None if none given.

    An unknown code or a missing note is refused by field (422); a chooser who may not choose, with 403."""
    if given in (None, {}, ""):
        return None
    if not isinstance(given, dict):
        raise ValidationFailed({field: ["根拠は {code, note} で指定してください。"]})
    code, note = given.get("code"), (given.get("note") or "").strip()
    errors: dict[str, list[str]] = {}
    if not code:
        errors[f"{field}.code"] = ["根拠を選んでください。"]
    elif code not in vocab.codes("sharing_bases"):
        errors[f"{field}.code"] = [f"「{code}」という根拠はありません（" + "、".join(vocab.codes("sharing_bases"))
                                   + " から選んでください）。"]
    if not note:
        errors[f"{field}.note"] = ["根拠を選んだ理由（どの事実がその根拠に当たるか）を入力してください。"]
    if errors:
        raise ValidationFailed(errors)
    if not may_choose(session, actor):
        raise PermissionDenied(MAY_NOT_CHOOSE, guard="basis_chooser")
    return Basis("statute", code=code, note=note)


WHAT_LABELS = {"sheet": "つなぐシート", "join": "参加依頼", "meeting": "支援会議の記録", "fact": "支援会議から共有する情報",
               "notice": "通知の内容", "plan_role": "支援プランの役割"}


def missing(session: Session, case: Case, department: Department) -> str:
    """What a body lacks for receiving the case's data, in Japanese (for a refusal or an alert)."""
    if department.commission_work:
        commission = f"委託（{department.commission_work}）の範囲にこの相談の分類が含まれていません"
    else:
        commission = "委託がありません（協定団体）"
    consent = current_given_consent(session, case.id)
    said = "本人の同意が記録されていません" if consent is None else "記録された本人の同意の範囲に含まれていません"
    return f"{commission}。{said}"


def require_basis(session: Session, case: Case, department: Department, what: str, *,
                  chosen: Basis | None = None) -> Basis:
    """The basis for giving `department` the case's data as `what` (WHAT_LABELS): a standing one, else the
    statute or emergency chosen; GuardRefused (409, guard `basis_needed`) naming what is missing otherwise."""
    basis = standing_basis(session, case, department)
    if basis is not None:
        return basis
    if chosen is not None:
        return chosen
    raise GuardRefused(
        f"{department.name}は市の外の機関です。{WHAT_LABELS[what]}を送るには情報提供の根拠が必要です: "
        f"{missing(session, case, department)}。本人の同意を記録するか、FM・サポートデスクが法令・緊急の根拠を選んで"
        "理由を書いてください。", guard="basis_needed")
