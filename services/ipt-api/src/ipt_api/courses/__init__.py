"""The IPT domain API at /ipt/v1: enrol, record sessions, manage and read courses."""

from ipt_api.courses.router import courses_router

__all__ = ["courses_router"]
