"""Input types that keep a request's values within what the database stores: text without
NUL characters (PostgreSQL refuses them in text), integers within their column's range,
instants within years the business-day arithmetic can take. A value outside answers 422
naming its field, where the database would otherwise fail the request with a 500."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import (
    AwareDatetime,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from tallyhub.core.errors import DomainError

INT32_MAX = 2**31 - 1  # an Integer column (row ids, limits)
INT64_MAX = 2**63 - 1  # a BigInteger column

# Leads and clicks happen now, give or take a client's wrong clock: these bounds only keep
# out instants that no clock could mean and whose business day would overflow a date.
MIN_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(2200, 1, 1, tzinfo=UTC)

NUL = "\x00"


def refuse_nul(value: str) -> str:
    if NUL in value:
        raise ValueError("must not contain NUL characters")
    return value


class NoNul:
    """Refuses a NUL character, and says so in the JSON schema (a pattern). Put length
    constraints before it (`Annotated[str, StringConstraints(max_length=64), NoNul()]`):
    after it they are checked as a generic length, with a vaguer message."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(refuse_nul, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("pattern", "^[^\\u0000]*$")
        return json_schema


Text = Annotated[str, NoNul()]
"""A string the database can store on every dialect: no NUL character."""

ShortText = Annotated[str, StringConstraints(max_length=200), NoNul()]
"""A search or a name: up to 200 characters, no NUL."""


def check_instant(value: datetime) -> datetime:
    if not MIN_INSTANT <= value < MAX_INSTANT:
        raise ValueError(f"must be between {MIN_INSTANT:%Y-%m-%d} and {MAX_INSTANT:%Y-%m-%d} (UTC)")
    return value


class _SaneInstant:
    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(check_instant, handler(source))


Instant = Annotated[AwareDatetime, _SaneInstant()]
"""A moment with its offset, between MIN_INSTANT and MAX_INSTANT."""

Int32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
"""A non-negative count or limit that fits an Integer column."""

RowId = Annotated[int, Field(ge=1, le=INT32_MAX)]
"""The id of a row of an Integer-keyed table (in a request body)."""

PathId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The row's id")]
"""The id of a row of an Integer-keyed table, in the path: past the range it is a 422."""


class InvalidField(DomainError):
    """A field whose value the service found wrong (e.g. a reference to nothing): a 422
    whose message starts with the field's name."""

    status, code = 422, "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
