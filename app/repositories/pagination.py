"""Keyset pagination, newest first, with an opaque cursor: stable while rows are being added."""

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from app.errors import InvalidCursor

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        return datetime.fromisoformat(created_at), str(row_id)
    except (ValueError, TypeError):
        raise InvalidCursor("cursor is not one this service issued; pass next_cursor from a previous page") from None


def newest_first(session: Session, stmt: Select[Any], model: Any, cursor: str | None, limit: int) -> Page[Any]:
    if cursor:
        created_at, row_id = decode_cursor(cursor)
        stmt = stmt.where(or_(model.created_at < created_at, and_(model.created_at == created_at, model.id < row_id)))
    rows = list(session.scalars(stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)
