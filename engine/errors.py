"""The engine's errors: each has a stable code for the API and a Japanese message for staff."""
from __future__ import annotations


class EngineError(Exception):
    """Base of every refusal the engine gives. Nothing is written when one is raised."""

    code = "engine_error"
    status = 400
    title = "処理できませんでした"

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, **self.extra}


class NotFound(EngineError):
    """The object does not exist, or the actor may not know that it exists."""

    code = "not_found"
    status = 404
    title = "見つかりません"

    def __init__(self, message: str = "指定されたものは見つかりません。", **extra):
        super().__init__(message, **extra)


class PermissionDenied(EngineError):
    """The actor can see the object but may not do this to it."""

    code = "forbidden"
    status = 403
    title = "権限がありません"


class SecrecyNotAcknowledged(PermissionDenied):
    """A member of a 支援会議 must acknowledge the 守秘義務 before reading or writing its records."""

    code = "secrecy_not_acknowledged"
    title = "守秘義務の確認が必要です"

    def __init__(self, message: str = "支援会議の記録を読む前に、守秘義務の確認をしてください。", **extra):
        super().__init__(message, **extra)


class UnknownEvent(EngineError):
    """The event name is not one the machine knows."""

    code = "unknown_event"
    status = 422
    title = "不明な操作です"

    def __init__(self, event: str, allowed_events: list[str]):
        message = f"「{event}」という操作はありません。"
        # The field at fault, as every 422 names it (`errors`), beside what may be done now.
        super().__init__(message, event=event, allowed_events=allowed_events, errors={"event": [message]})
        self.allowed_events = allowed_events


class EventNotAllowed(EngineError):
    """The event exists but the current state does not allow it."""

    code = "event_not_allowed"
    status = 409
    title = "現在の状態ではこの操作はできません"

    def __init__(self, event: str, state: str, state_label: str, allowed_events: list[str],
                 allowed_labels: list[str], *, event_label: str):
        super().__init__("", event=event, state=state)
        # The message names the action as staff call it; `event` keeps the code (the API's detail fields).
        self.event, self.event_label, self.state_label = event, event_label, state_label
        self.narrow(allowed_events, allowed_labels)

    def narrow(self, allowed_events: list[str], allowed_labels: list[str]) -> None:
        """Name, in the message and in `allowed_events` alike, only what the caller may do now."""
        allowed = "、".join(allowed_labels) if allowed_labels else "なし"
        self.message = f"現在の状態（{self.state_label}）では「{self.event_label}」はできません。できる操作: {allowed}"
        self.args = (self.message,)
        self.allowed_events = self.extra["allowed_events"] = allowed_events


class GuardRefused(EngineError):
    """The state allows the event but a condition of the event is not met."""

    code = "guard_refused"
    status = 409
    title = "操作の条件を満たしていません"

    def __init__(self, message: str, guard: str, allowed_events: list[str] | None = None):
        super().__init__(message, guard=guard, allowed_events=allowed_events or [])


class StaleVersion(EngineError):
    """The record changed since the actor loaded it; the action was not applied."""

    code = "stale_version"
    status = 409
    title = "他の人が先に更新しました"

    def __init__(self, current_version: int | None, given_version: int | None = None):
        super().__init__(
            "このケースは他の職員が先に更新しました。最新の状態を確認してからやり直してください。",
            current_version=current_version, given_version=given_version,
        )
        self.current_version = current_version


class ValidationFailed(EngineError):
    """One or more fields are missing or wrong; `errors` maps field names to messages."""

    code = "validation_error"
    status = 422
    title = "入力内容に誤りがあります"

    def __init__(self, errors: dict[str, list[str]], message: str | None = None):
        first = next(iter(errors.items()), ("", [""]))
        super().__init__(message or f"{first[0]}: {first[1][0]}", errors=errors)
        self.errors = errors


class MissingField(ValidationFailed):
    """A field the event needs was not given."""

    code = "missing_field"


class Conflict(EngineError):
    """The action collides with an existing record (a duplicate, a taken key)."""

    code = "conflict"
    status = 409
    title = "既存のデータと重複しています"


class LostRace(EngineError):
    """The action met a concurrent one in the database and was rolled back whole (engine.db.lost_race)."""

    code = "conflict"
    status = 409
    title = "同時に行われた操作と重なりました"

    def __init__(self):
        super().__init__("ほかの職員の操作と同時に行われたため、処理しませんでした（何も記録されていません）。"
                         "最新の状態を確認してからやり直してください。")

