"""Request models that read as their JSON Schema says, so a schema-valid body is never refused for its
shape: whole numbers as JSON Schema reads them, and "exactly one of these fields" said in the schema.

3 and 3.0 are integers; `true` and "3", which pydantic's lax int reads as 1 and 3, are not. (Floats
need nothing of their own: Field(strict=True) refuses `true` and "0.5" and still takes 1.)"""

from typing import Annotated, Any, cast

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema


class _WholeNumber:
    """Strict int, with a whole float such as 3.0 taken as 3. Bounds go before it in an Optional's
    Annotated (`Annotated[int, Field(ge=1), WHOLE] | None`): bounds set on the Optional itself land
    in the document as `ge`, which JSON Schema does not know, instead of `minimum`."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        strict = cast(core_schema.CoreSchema, {**handler(source), "strict": True})
        return core_schema.no_info_before_validator_function(_whole_float_to_int, strict)


def _whole_float_to_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


WHOLE = _WholeNumber()
JsonInt = Annotated[int, WHOLE]


def exactly_one_of(first: str, second: str) -> dict[str, Any]:
    """json_schema_extra for a model whose validator wants exactly one of two fields given (not null).
    Said with `not` alone: a client generator reads a top-level oneOf or anyOf as a union of untyped
    bodies, and the model's own properties would be lost to it."""
    given = [{"required": [field], "properties": {field: {"not": {"type": "null"}}}} for field in (first, second)]
    return {"not": {"anyOf": [{"allOf": given}, {"not": {"anyOf": given}}]}}
