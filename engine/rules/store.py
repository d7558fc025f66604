"""The rules in force: installed versions of the rules file in the database, and what they decide on.

Installed rules are numbered versions; every routing decision records the version and the rule that made
it (engine.routing). The stall policy and the business calendar that set a つなぐシート's deadlines are read
here; the scan that turns them into alerts is engine.alerts.scan.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from engine import vocab
from engine.audit import trail
from engine.calendar import BusinessCalendar
from engine.models import Department, RoutingRuleVersion
from engine.rules.code_lists import load_vocabularies
from engine.rules.parser import parse_rules, parse_rules_file
from engine.rules.ruleset import RulesError, RuleSet, StallPolicy

log = logging.getLogger(__name__)


_RULESET_CACHE: dict[tuple[int, str, str], RuleSet] = {}


_CALENDAR_CACHE: dict[str, Any] = {}


def _config_dir() -> Path:
    return vocab.config_dir()


def business_calendar():
    """The city's business calendar (config/calendar.yaml), read once per config folder."""
    path = str(_config_dir() / "calendar.yaml")
    if path not in _CALENDAR_CACHE:
        _CALENDAR_CACHE[path] = BusinessCalendar.from_file(path)
    return _CALENDAR_CACHE[path]


def check_rules_file(path: Path, config_dir: Path | None = None) -> RuleSet:
    """Validate a rules file against the code lists of ``config_dir`` (default: the configured folder).

    Raises RulesError (``file:line: reason`` per problem) or ValueError when the code lists themselves
    cannot be read.
    """
    return parse_rules_file(Path(path), Path(config_dir) if config_dir is not None else _config_dir())


def install_rules(session, path: Path, *, loaded_by: str | None = None, config_dir: Path | None = None):
    """Validate `path` and store it as the next rules version; an unchanged file adds no version.

    Beyond the code lists, every owner and notified department must exist in the database (a rule that
    proposes a department nobody can sign in for would leave its cases unrouted). A file that fails
    raises RulesError and changes nothing: the old version stays in force. Returns (version row, added).
    """
    path = Path(path)
    ruleset = check_rules_file(path, config_dir)
    known = set(session.scalars(select(Department.code)))
    problems = [
        (str(path), rule.line, f"ルール '{rule.name}' の部署コード '{code}' はデータベースに登録されていません"
                               "（先に部署を登録してください）")
        for rule in ruleset.rules
        for code in dict.fromkeys((rule.owner, *rule.notify))
        if code not in known
    ]
    if problems:
        raise RulesError(problems)
    current = session.scalars(
        select(RoutingRuleVersion).order_by(RoutingRuleVersion.number.desc()).limit(1)
    ).first()
    if current is not None and current.checksum == ruleset.checksum:
        return current, False
    number = (session.scalar(select(func.max(RoutingRuleVersion.number))) or 0) + 1
    row = RoutingRuleVersion(number=number, checksum=ruleset.checksum, source_name=path.name,
                             source_text=ruleset.source_text, loaded_by=loaded_by)
    session.add(row)
    session.flush()
    trail.record(session, actor=None, actor_label=loaded_by or "system", action="rules.load",
                 object_type="routing_rules", object_id=number, detail={"checksum": ruleset.checksum})
    return row, True


def active_rules(session):
    """The newest installed rules version and its parsed RuleSet, or (None, None) before any is loaded.

    Raises RulesError if the stored text no longer validates against the code lists (a department or
    category was removed from config/ after the rules were loaded).
    """
    cached = session.info.get("active_rules")
    if cached is not None and session.get_transaction() is not None and cached[0] is session.get_transaction():
        return cached[1]
    # The version and checksum name the rules; their text is read and parsed once per process.
    row = session.execute(
        select(RoutingRuleVersion.number, RoutingRuleVersion.checksum)
        .order_by(RoutingRuleVersion.number.desc()).limit(1)
    ).first()
    if row is None:
        return None, None
    result = (row.number, stored_ruleset(session, row.number, row.checksum))
    session.info["active_rules"] = (session.get_transaction(), result)
    return result


def stored_ruleset(session, number: int, checksum: str) -> RuleSet:
    """The parsed RuleSet of installed version `number` (whose checksum is `checksum`): its stored text is
    read and parsed once per process. Raises RulesError if that text no longer validates."""
    key = (number, checksum, str(_config_dir()))
    if key not in _RULESET_CACHE:
        source_name, source_text = session.execute(
            select(RoutingRuleVersion.source_name, RoutingRuleVersion.source_text)
            .where(RoutingRuleVersion.number == number)
        ).one()
        _RULESET_CACHE[key] = parse_rules(source_text, filename=source_name, **load_vocabularies(_config_dir()))
    return _RULESET_CACHE[key]


def _file_rules() -> RuleSet:
    key = (0, "file", str(_config_dir()))
    if key not in _RULESET_CACHE:
        _RULESET_CACHE[key] = parse_rules_file(_config_dir() / "routing.yaml", _config_dir())
    return _RULESET_CACHE[key]


def stall_policy(session) -> StallPolicy:
    """The stall policy in force: the installed rules', else the config folder's routing.yaml."""
    try:
        _, ruleset = active_rules(session)
    except RulesError as exc:
        log.error("installed routing rules no longer validate; using routing.yaml's stall policy: %s", exc)
        ruleset = None
    return (ruleset or _file_rules()).stall_policy


def handoff_deadlines(session, sent_at, urgency: str):
    """(due_at, escalate_at) for a handoff sent at `sent_at`, on the business calendar, in UTC."""
    policy = stall_policy(session)
    cal = business_calendar()
    if urgency == "urgent":
        due = cal.deadline_after_office_hours(sent_at, policy.urgent_accept_within_office_hours)
    else:
        due = cal.deadline_after_business_days(sent_at, policy.accept_within_business_days)
    escalate = cal.deadline_after_business_days(sent_at, policy.escalate_after_business_days)
    return due, max(due, escalate)
