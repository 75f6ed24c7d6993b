"""Which sessions count, and as what (docs/fhir-mapping.md#what-counts).

An Encounter whose `appointment` references an Appointment is the same session as that
Appointment: a `finished` or `cancelled` Encounter decides; with any other Encounter status the
Appointment's status decides; an `entered-in-error` Encounter is ignored. Facts are taken *as of*
`now`: a session after `now` does not count, except a booked Appointment, which is a future
booking exactly while its start is after `now` (a past `booked` counts as nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from ipt_core.ipt.codes import APPOINTMENT_OUTCOMES, ENCOUNTER_OUTCOMES, SessionOutcome

from ._facts import SessionFact

_ERROR: Final = "entered-in-error"


def resolve_session(
    session_id: str,
    *,
    encounter_status: str | None = None,
    encounter_start: datetime | None = None,
    appointment_status: str | None = None,
    appointment_start: datetime | None = None,
) -> SessionFact | None:
    """Resolve an Encounter and/or the Appointment it references into one session fact.

    Args:
        session_id: The id to order ties by (the loader's choice, e.g. the Appointment's id
            when there is one, so the id does not change when the Encounter arrives).
        encounter_status: `Encounter.status`, None when there is no Encounter.
        encounter_start: `Encounter.period.start`.
        appointment_status: `Appointment.status` of the Appointment the Encounter references
            (or of a lone Appointment), None when there is none.
        appointment_start: `Appointment.start`.

    Returns:
        The session with its deciding outcome (statuses the rules do not name, such as a `planned`
        Encounter alone or a `proposed` Appointment, give outcome `none`); None when nothing
        counts: only `entered-in-error` resources, or no time to place the session at.
    """
    if encounter_status == _ERROR:
        encounter_status, encounter_start = None, None
    outcome = _deciding_outcome(encounter_status, appointment_status)
    time = encounter_start if encounter_start is not None else appointment_start
    if outcome is None or time is None:
        return None
    return SessionFact(id=session_id, time=time, outcome=outcome)


def _deciding_outcome(
    encounter_status: str | None, appointment_status: str | None
) -> SessionOutcome | None:
    if encounter_status is not None and encounter_status in ENCOUNTER_OUTCOMES:
        return ENCOUNTER_OUTCOMES[encounter_status]
    if appointment_status is not None and appointment_status != _ERROR:
        return APPOINTMENT_OUTCOMES.get(appointment_status, "none")
    if appointment_status is None and encounter_status is not None:
        return "none"
    return None


def session_order(session: SessionFact) -> tuple[datetime, str]:
    """Sort key: sessions are ordered by time, ties by resource id."""
    return session.time, session.id


def attended_as_of(sessions: tuple[SessionFact, ...], now: datetime) -> list[SessionFact]:
    """The sessions attended at or before `now`, in session order."""
    counted = (s for s in sessions if s.outcome == "attended" and s.time <= now)
    return sorted(counted, key=session_order)


@dataclass(frozen=True, slots=True)
class SessionTally:
    """A course's own sessions as they stand at one instant.

    Attributes:
        attended: Attended sessions at or before `now`, in order (numbered 1, 2, 3 …).
        no_shows: No-shows at or before `now`.
        cancelled: Cancelled sessions at or before `now`.
        next_booking: Start of the earliest booked Appointment after `now`, if any.
        no_show_streak: The two latest past sessions that were attended or no-show are both
            no-shows.
    """

    attended: tuple[SessionFact, ...]
    no_shows: int
    cancelled: int
    next_booking: datetime | None
    no_show_streak: bool


def tally_sessions(sessions: tuple[SessionFact, ...], now: datetime) -> SessionTally:
    """Count a course's sessions as of `now`."""
    past = sorted((s for s in sessions if s.time <= now), key=session_order)
    seen = [s.outcome for s in past if s.outcome in ("attended", "no-show")]
    bookings = (s.time for s in sessions if s.outcome == "booked" and s.time > now)
    return SessionTally(
        attended=tuple(s for s in past if s.outcome == "attended"),
        no_shows=seen.count("no-show"),
        cancelled=sum(1 for s in past if s.outcome == "cancelled"),
        next_booking=min(bookings, default=None),
        no_show_streak=seen[-2:] == ["no-show", "no-show"],
    )
