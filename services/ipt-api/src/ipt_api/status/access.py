"""Request parts the status and analytics routes share: the course a route reads, authorized
before anything of it is read, and the dashboards' therapist / organization filters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from ipt_api.authz import authorize, require_course
from ipt_api.deps import ConnectionDep, PrincipalDep

__all__ = ["DashboardFilters", "OperatedCourse", "ReadCourse"]


def _course(interaction: str) -> Callable[..., Awaitable[str]]:
    async def course(course_id: str, conn: ConnectionDep, principal: PrincipalDep) -> str:
        authorize(principal, "CarePlan", interaction, id_=course_id)
        await require_course(conn, principal, course_id)  # 404 outside a patient compartment
        return course_id

    return course


@dataclass(frozen=True)
class _Filters:
    """Which therapist's or organization's courses a dashboard covers (None: any)."""

    therapist: str | None = None
    organization: str | None = None


ReadCourse = Annotated[str, Depends(_course("read"))]
OperatedCourse = Annotated[str, Depends(_course("operation"))]
DashboardFilters = Annotated[_Filters, Depends()]
