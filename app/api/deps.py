"""Typed dependencies shared by the routes."""

import re
from collections.abc import AsyncIterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from sqlalchemy.orm import Session, sessionmaker

from app.db import session_scope
from app.errors import Forbidden, RateLimited, Unauthorized
from app.models import Owner
from app.repositories.pagination import CURSOR_DESCRIPTION, CURSOR_PATTERN
from app.services import owners as owner_service
from app.services.audit import AuditContext
from app.services.owners import CachedKey
from app.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API key, `ek_…` (`epochly keys create --owner NAME`)")


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's one unit of work, committed when the route returns (routes that must act after
    their commit, such as a 201 with a Location, commit themselves).

    Function scope (below): the session closes as soon as the route function returns, not when the
    response has been sent. A session kept until then holds its connection while the response waits
    for a threadpool slot to serialize, and under load every slot waits for a connection: deadlock.
    A stream, likewise, holds no connection for its lifetime. Async, so that the teardown runs on the
    event loop and never waits for a threadpool slot itself."""
    with session_scope(request.app.state.session_factory) as session:
        yield session


def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Methods that change nothing: all a `read` key may call.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def current_key(
    request: Request, session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> CachedKey:
    """The calling key, checked and counted against its rate limit, whatever its scope.

    The hot path (a poller's every request) is one cache lookup and one token taken: no database
    round trip, except once a minute per key to write last_used_at."""
    if credentials is None:
        raise Unauthorized("missing API key: send `Authorization: Bearer ek_…`")
    state = request.app.state
    key = state.key_cache.get(credentials.credentials)
    if key is None:
        found = owner_service.find_key(session, credentials.credentials)
        if found is None:
            raise Unauthorized("the API key is not valid")
        record, owner = found
        if record.revoked_at is not None:
            state.refusals.count(record.id, 401)
            raise Unauthorized("the API key is not valid")
        # Detached and loaded: the cached owner is shared by later requests, which a rollback here must not expire.
        session.expunge(owner)
        session.commit()  # end the read here: a long route (a submit's spec check) must not hold it open
        key = state.key_cache.put(credentials.credentials, record, owner)
    if key.expired():
        state.refusals.count(key.key_id, 401)
        raise Unauthorized(owner_service.expired_detail(key.expires_at))
    verdict = state.rate_limiter.take(key.key_id)
    request.state.ratelimit = verdict
    if verdict is not None and not verdict.allowed:
        state.refusals.count(key.key_id, 429)
        raise RateLimited(
            f"this key is over its limit of {verdict.limit} requests a minute; try again in {verdict.retry_after_s} s",
            verdict.retry_after_s,
        )
    if state.key_cache.touch_due(key.key_id):
        owner_service.touch_key(session, key.key_id)
        session.commit()
    request.state.key = key
    return key


CurrentKeyDep = Annotated[CachedKey, Depends(current_key, scope="function")]


def current_owner(request: Request, key: CurrentKeyDep) -> Owner:
    """The calling key's owner; a `read` key may only read (403 on any write)."""
    if key.scope != "write" and request.method not in READ_METHODS:
        request.app.state.refusals.count(key.key_id, 403)
        raise Forbidden("this API key has scope `read`: it may only read (GET routes and streams)")
    return key.owner


def audit_context(request: Request, key: CurrentKeyDep) -> AuditContext:
    return AuditContext(owner_id=key.owner.id, key_id=key.key_id, client=request.client.host if request.client else None)


SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
OwnerDep = Annotated[Owner, Depends(current_owner, scope="function")]
AuditDep = Annotated[AuditContext, Depends(audit_context, scope="function")]
CursorQuery = Annotated[str | None, Query(pattern=CURSOR_PATTERN, description=CURSOR_DESCRIPTION)]

_DIGITS = re.compile(r"-?[0-9]+")


def _written_in_digits(value: object) -> object:
    """Pydantic's lax int parsing turns "+0.0", " 5" and "5_0" into numbers; the document declares
    an integer, so a query string must be one, as every typed client writes it."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError("Input should be a whole number written in digits")
    return value


# Goes after the Query(...) in an int query parameter's Annotated: before it, or in a nested
# Annotated, it turns the Query's bounds into unknown keys ("ge") in the OpenAPI document.
DIGITS_ONLY = BeforeValidator(_written_in_digits)
PageLimit = Annotated[int, Query(ge=1, le=200, description="Items per page"), DIGITS_ONLY]
