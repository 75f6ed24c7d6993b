"""The fhir.resources models' validation, compiled into one schema for the served types.

A fhir.resources model validates each nested element through Python: a wrap validator calls
the element model's `model_validate`, whose custom `__init__` validates again, then a null
check that walks every field and a check of required and choice elements. On a bulk load
that was ~100 µs of each resource's ~400 µs of API CPU (docs/architecture.md, "Write path",
Validation).

`accepts` runs the same models' own core schemas, joined by reference instead of by Python
calls, in one pydantic-core pass:

- each element model's wrap validator becomes a reference to that model's schema, which
  rejects a null item of a list just as the null check does;
- the check of required and choice elements (`validate_after_model_construction`) runs
  only on the models that have such elements, with their names worked out once; an element
  it would refuse goes to the model's own check;
- the models' fields, types, patterns, aliases and `extra="forbid"` are the models' own;
- anything else (contained resources, a model of a shape not seen here) keeps the model's
  own validator.

It answers "valid" for what the models accept (tests/unit/fhir/test_compiled_model.py checks
that implication on mutated resources). A resource it refuses goes to the full model, whose
errors the API reports. Where the models accept what it refuses, the models are lenient in
ways FHIR JSON is not, and its own errors are reported (`refusals`): a nested element given as
JSON text (fhir_core parses a string), a `resourceType` or `resource_type` key inside an
element or beside the resource's own (`__init__` takes them out), a null for a required
element (the wrap validator passes None through).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable
from functools import cache
from typing import Any, cast

import pydantic_core
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.resource import Resource
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic_core import CoreSchema, ErrorDetails, SchemaValidator, core_schema

from ipt_core.fhir.registry import REGISTRY

__all__ = ["ABSTRACT_RESOURCES", "accepts", "compiled", "refusals"]

# The fhir_core wrap validator of an element model's field.
_ELEMENT_VALIDATOR = "FhirBase.__get_pydantic_core_schema__.<locals>._validate"
# The abstract resource models: fhir_core dispatches a value of theirs (a contained resource)
# by its `resourceType`, so it keeps its own validator here; no resource is one of them.
ABSTRACT_RESOURCES: tuple[type[FHIRAbstractModel], ...] = (Resource, DomainResource)


def accepts(resource: dict[str, Any]) -> bool:
    """True when `resource` is valid under its fhir.resources model; False when it is not,
    or when the compiled schema cannot tell (the full model then decides)."""
    return refusals(resource) == []


def refusals(resource: dict[str, Any]) -> list[ErrorDetails] | None:
    """What the compiled schema refuses in `resource`, located in the resource (empty when it
    is valid); None for a type the schema does not cover.

    For a resource it refuses and the models accept, these are the answer: the models take
    some JSON that is not FHIR's, and this schema does not (module docstring)."""
    validator, covered = compiled()
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in covered:
        return None
    # The model's `__init__` takes `resourceType` out before validating; the caller chose the
    # model by it, so it matches. Here it picks the served type's schema.
    body = {key: value for key, value in resource.items() if key != "resourceType"}
    try:
        validator.validate_python({"resourceType": resource_type, "resource": body})
    except pydantic_core.ValidationError as error:
        return [{**problem, "loc": problem["loc"][2:]} for problem in error.errors()]
    return []


@cache
def compiled() -> tuple[SchemaValidator, frozenset[str]]:
    """One validator for every served type, and the types it covers; built on first use
    (~0.1 s; the API builds it at start). The element models they share (Extension reaches
    most of them) are compiled once: 5 MB, where a validator per type took 12 MB for the
    eight."""
    compiler = _Compiler()
    choices: dict[Hashable, CoreSchema] = {}
    for resource_type in REGISTRY:
        reference = compiler.reference(get_fhir_model_class(resource_type))
        if reference is not None:
            choices[resource_type] = core_schema.typed_dict_schema(
                {
                    "resourceType": core_schema.typed_dict_field(
                        core_schema.literal_schema([resource_type])
                    ),
                    "resource": core_schema.typed_dict_field(reference),
                },
                extra_behavior="forbid",
            )
    validator = SchemaValidator(
        core_schema.definitions_schema(
            core_schema.tagged_union_schema(choices, discriminator="resourceType"),
            compiler.definitions(),
        )
    )
    return validator, frozenset(str(resource_type) for resource_type in choices)


class _Compiler:
    """Compiles models into definitions: each model reachable from them once, by reference."""

    def __init__(self) -> None:
        self._definitions: dict[str, CoreSchema] = {}
        self._unsupported: set[type[FHIRAbstractModel]] = set()

    def definitions(self) -> list[CoreSchema]:
        return list(self._definitions.values())

    def reference(self, model: type[FHIRAbstractModel]) -> CoreSchema | None:
        """A reference to `model`'s compiled schema, built on first use; None when `model`'s
        schema is not of the shape compiled here."""
        ref = f"{model.__module__}.{model.__qualname__}"
        if ref not in self._definitions:
            if model in self._unsupported:
                return None
            shell = _model_shell(model)
            if shell is None:
                self._unsupported.add(model)
                return None
            # Registered before its fields are compiled: a model may contain itself
            # (Extension.extension).
            self._definitions[ref] = shell
            fields = shell["schema"]
            fields["fields"] = {
                name: {**field, "schema": self._rewrite(field["schema"])}
                for name, field in fields["fields"].items()
            }
            check = _element_check(model)
            if check is None:
                shell["ref"] = ref
            else:
                self._definitions[ref] = core_schema.no_info_after_validator_function(
                    check, shell, ref=ref
                )
        return core_schema.definition_reference_schema(ref)

    def _rewrite(self, node: Any) -> Any:
        """`node` with every element model's wrap validator replaced by a reference."""
        if isinstance(node, list):
            return [self._rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        if node.get("type") == "function-wrap" and _qualname(node) == _ELEMENT_VALIDATOR:
            target = _element_model(node)
            if target is not None and target not in ABSTRACT_RESOURCES:
                reference = self.reference(target)
                if reference is not None:
                    return reference
            # The model's own validator takes a null, which only reaches it as the item of a
            # list (a field's null is the `nullable` around it): the null check's case.
            return core_schema.no_info_before_validator_function(_not_null, node)
        return {
            key: value if key in ("serialization", "metadata") else self._rewrite(value)
            for key, value in node.items()
        }


# The functions in the models' schemas (mypy sees pydantic's decorator proxies).
_AFTER = cast(Callable[[Any], Any], FHIRAbstractModel.validate_after_model_construction)
_NULL_CHECK = FHIRAbstractModel.reject_null_complex_elements.__func__


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("None is not allowed as an element of a list")
    return value


def _element_check(model: type[FHIRAbstractModel]) -> Callable[[Any], Any] | None:
    """`model`'s check of required and choice elements, or None when it has none.

    The model's own check (`validate_after_model_construction`) looks every field up again
    on each element; this one reads the values it needs with names worked out once, and
    hands any element that fails it to the model's check, which raises its own error. It
    passes exactly the elements that check passes: each required element has a value, and
    each choice has at most one (one when it is required)."""
    instance = model.model_construct()
    aliases = model.get_alias_mapping()
    required = tuple(aliases[name] for name, _ in instance.get_required_fields())
    choices = tuple(
        (tuple(names), model.model_fields[names[0]].json_schema_extra["one_of_many_required"])  # type: ignore[index]
        for names in instance.get_one_of_many_fields().values()
    )
    if not required and not choices:
        return None

    def check(element: Any) -> Any:
        values = element.__dict__
        for name in required:
            if values[name] is None:
                return _AFTER(element)  # an extension may stand in for the value
        for names, needed in choices:
            given = sum(values[name] is not None for name in names)
            if given > 1 or (needed and not given):
                return _AFTER(element)
        return element

    return check


def _model_shell(model: type[FHIRAbstractModel]) -> dict[str, Any] | None:
    """`model`'s model schema without its custom `__init__`, null check and after-validator
    (its fields still the model's own); None when the schema is not the shape every
    fhir.resources model has: after(validate_after_model_construction,
    model(before(reject_null_complex_elements, model-fields)))."""
    after = model.__pydantic_core_schema__
    if after.get("type") != "function-after" or _function(after) is not _AFTER:
        return None
    shell = after["schema"]
    before = shell.get("schema", {})
    if shell.get("type") != "model" or before.get("type") != "function-before":
        return None
    if getattr(_function(before), "__func__", None) is not _NULL_CHECK:
        return None
    fields = before["schema"]
    if fields.get("type") != "model-fields":
        return None
    return {
        "type": "model",
        "cls": model,
        "schema": dict(fields),
        "custom_init": False,
        "root_model": False,
        "config": shell["config"],
    }


def _function(schema: Any) -> Any:
    return schema["function"]["function"]


def _qualname(node: dict[str, Any]) -> str | None:
    return getattr(_function(node), "__qualname__", None)


def _element_model(node: dict[str, Any]) -> type[FHIRAbstractModel] | None:
    source = inspect.getclosurevars(_function(node)).nonlocals.get("source_type")
    target = source.get_model_klass() if source is not None else None
    return target if isinstance(target, type) and issubclass(target, FHIRAbstractModel) else None
