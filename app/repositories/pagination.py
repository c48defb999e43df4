"""Keyset pagination, newest first, with a cursor that names the last row seen: stable while rows are being added."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from app.errors import InvalidCursor

T = TypeVar("T")
SelectT = TypeVar("SelectT", bound="Select[*tuple[Any, ...]]")

# "<created_at in microseconds since 1970-01-01 UTC>.<id>" of the last row of the previous page.
# Every string of this shape is a valid position (16 digits reach the year 2286), so a client's
# schema check and the service agree on which cursors are accepted.
CURSOR_PATTERN = r"^[0-9]{1,16}\.[a-z]{1,10}_[0-9a-f]{32}$"
CURSOR_DESCRIPTION = (
    "`next_cursor` from the previous page: `<created_at in microseconds since 1970-01-01 UTC>.<id>` "
    "of that page's last item, e.g. `1795608000000000.job_0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f`"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    return f"{(created_at - _EPOCH) // _MICROSECOND}.{row_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise InvalidCursor("cursor is not one this service issued; pass next_cursor from a previous page")
    micros, row_id = cursor.split(".", 1)
    return _EPOCH + int(micros) * _MICROSECOND, row_id


def newest_first(session: Session, stmt: Select[Any], model: Any, cursor: str | None, limit: int) -> Page[Any]:
    """A page of `model` objects."""
    return _page(list(session.scalars(_ordered(stmt, model, cursor, limit))), limit)


def newest_first_rows(
    session: Session, stmt: "Select[*tuple[Any, ...]]", model: Any, cursor: str | None, limit: int
) -> Page[Any]:
    """A page of rows of the selected columns, which must include `created_at` and `id`."""
    return _page(list(session.execute(_ordered(stmt, model, cursor, limit))), limit)


def _ordered(stmt: SelectT, model: Any, cursor: str | None, limit: int) -> SelectT:
    if cursor:
        created_at, row_id = decode_cursor(cursor)
        stmt = stmt.where(or_(model.created_at < created_at, and_(model.created_at == created_at, model.id < row_id)))
    return stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)


def _page(rows: list[Any], limit: int) -> Page[Any]:
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)
