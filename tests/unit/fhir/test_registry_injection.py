"""Profiles add search parameters to the FHIR registry at the composition root, once."""

from __future__ import annotations

import pytest

from ipt_core.composition import compose
from ipt_core.fhir.registry import REGISTRY, SearchParam, register_search_params
from ipt_core.ipt.search_params import IPT_SEARCH_PARAMS


def test_composing_serves_the_ipt_parameters_and_is_idempotent() -> None:
    compose()
    compose()
    for resource_type, params in IPT_SEARCH_PARAMS.items():
        for param in params:
            assert REGISTRY[resource_type].params[param.name] == param


def test_a_different_parameter_under_a_served_name_is_refused() -> None:
    clash = SearchParam("careplan", "token", ("Encounter.id",), "Not the course link")
    with pytest.raises(ValueError, match="careplan"):
        register_search_params("Encounter", clash)


def test_the_registry_cannot_be_changed_by_hand() -> None:
    with pytest.raises(TypeError):
        REGISTRY["Encounter"] = REGISTRY["Patient"]  # type: ignore[index]
