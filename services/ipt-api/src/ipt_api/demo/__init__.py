"""Demo data: a small synthetic caseload so a newcomer sees real-looking courses at once.

`seed_demo` writes it (through the domain service, so FHIR resources, projections and the
recompute queue all agree); `ipt seed-demo` runs it, and `ipt run` does on a database that
holds no IPT course yet (`has_ipt_courses`).
"""

from ipt_api.demo._caseload import CASELOAD, DEMO_PATIENT_SYSTEM
from ipt_api.demo._seed import has_ipt_courses, seed_demo

__all__ = ["CASELOAD", "DEMO_PATIENT_SYSTEM", "has_ipt_courses", "seed_demo"]
