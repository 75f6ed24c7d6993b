"""The IPT search parameters the FHIR store serves on top of the spec's ones.

Sessions (Encounter, Appointment) name their course in an extension (docs/fhir-mapping.md);
`careplan` searches that link. The FHIR layer knows nothing of IPT: the composition root
(`ipt_core.composition`) registers these with `register_search_params`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ipt_core.fhir.registry import SearchParam
from ipt_core.ipt.codes import APPOINTMENT_BASED_ON_EXTENSION, ENCOUNTER_BASED_ON_EXTENSION

__all__ = ["IPT_SEARCH_PARAMS"]


def _course_link(resource_type: str, extension: str) -> SearchParam:
    return SearchParam(
        "careplan",
        "reference",
        (f"{resource_type}.extension({extension}).valueReference",),
        "The IPT course (CarePlan) this session belongs to",
        ("CarePlan",),
        definition=f"http://fhir.ipt-care.org/SearchParameter/{resource_type.lower()}-careplan",
    )


IPT_SEARCH_PARAMS: Final[Mapping[str, tuple[SearchParam, ...]]] = {
    "Encounter": (_course_link("Encounter", ENCOUNTER_BASED_ON_EXTENSION),),
    "Appointment": (_course_link("Appointment", APPOINTMENT_BASED_ON_EXTENSION),),
}
