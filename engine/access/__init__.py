"""Who may see and do what: actors, a person's relations to a case, the policy, and the policy in SQL.

The public face of the policy, as every room uses it (`access.require(...)`, `access.Sight.CONTENT`): the
names below come from engine.access.actors, .relations, .policy and .visibility, where each is explained.
"""
from engine.access.actors import SYSTEM_ACTOR, ClientActor, actor_for_client, is_person, referral_visible  # noqa: F401
from engine.access.policy import (  # noqa: F401
    CASE_CONTENT,
    CASE_METADATA,
    CONSENT,
    CONTACT_NOTES,
    CONVENE,
    DENIED,
    EVENT_PERMISSIONS,
    LAYERED_MEETING,
    PLAN,
    POLICY,
    READ,
    RECORD_KINDS,
    REOPEN,
    ROUTE,
    SHARED_FACTS,
    SUPPORT_MEETING,
    WRITE,
    contact_note_visible,
    may,
    may_fire,
    permissions,
    require,
    require_admin,
    shared_fact_visible,
)
from engine.access.relations import (  # noqa: F401
    ADMIN,
    CASE_FM,
    CASE_MEMBER,
    CONTENT_RELATIONS,
    COVERED,
    FM,
    FORMER,
    INVITED,
    JOINED,
    MEETING_TRACK_STATES,
    MEMBER,
    METADATA_RELATIONS,
    NOTIFIED,
    OWNER,
    PENDING,
    PENDING_MEMBER,
    RECORDER,
    SECRETARIAT,
    SYSTEM,
    Sight,
    case_sight,
    consented_department_ids,
    current_consent,
    current_given_consent,
    invitation_reaches,
    meeting_consented_department_ids,
    meeting_relations,
    member_meeting_ids,
    note_meeting_id,
    relations,
    sight_of,
)
from engine.access.visibility import (  # noqa: F401
    content_cases_filter,
    content_is_visibility,
    visible_cases_filter,
    visible_state_counts,
)
from engine.departments import DESK_CODE  # noqa: F401

__all__ = [name for name in dir() if not name.startswith("_")]
