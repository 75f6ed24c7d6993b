"""Authorization in one place: scopes, search reach, patient compartments (see `policy`)."""

from __future__ import annotations

from ipt_api.authz.policy import (
    authorize,
    authorize_criteria,
    check_reach,
    compartment_criteria,
    plan_search,
    read_visible,
    require_course,
    require_visible,
    require_writable,
    visible,
    visible_included,
)

__all__ = [
    "authorize",
    "authorize_criteria",
    "check_reach",
    "compartment_criteria",
    "plan_search",
    "read_visible",
    "require_course",
    "require_visible",
    "require_writable",
    "visible",
    "visible_included",
]
