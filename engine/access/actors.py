"""Who acts besides a signed-in member of staff: the engine itself (automatic routing) and outside systems."""
from __future__ import annotations


class _SystemActor:
    """The engine itself acting (automatic routing); never a person, never signs in."""

    id = None
    login = "system"
    display_name = "自動振り分け"
    role = "system"
    department_id = None
    active = True
    is_fm = False
    is_admin = False


SYSTEM_ACTOR = _SystemActor()


class ClientActor:
    """An outside system acting for no staff user (a token with `referrals:*` scopes only).

    It sees the referrer's view of its own referrals and nothing else of any case.
    """

    id = None
    role = "client"
    department_id = None
    is_fm = False
    is_admin = False

    def __init__(self, client):
        self.client = client
        self.client_id = client.id
        self.login = f"client:{client.name}"
        self.display_name = client.name

    @property
    def active(self) -> bool:
        return True


def actor_for_client(client):
    """The actor an API client's token acts as: the staff user it names, else a ClientActor.

    A disabled user stays the actor, and every rule below refuses an inactive user, so the token stops.
    """
    if client.user_id is not None:
        return client.user
    return ClientActor(client)


def referral_visible(actor, case) -> bool:
    """Whether `actor` is the outside system that referred the case (the referrer's view)."""
    return isinstance(actor, ClientActor) and case.referral_client_id == actor.client_id


def is_person(user) -> bool:
    """An active staff user (staff, fm or admin) — not the system, not an outside client."""
    return user is not None and getattr(user, "role", None) in ("staff", "fm", "admin") and bool(user.active)
