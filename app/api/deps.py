"""Typed dependencies shared by the routes."""

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Annotated, Any, TypeVar

from celery import Celery
from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from sqlalchemy.orm import Session, sessionmaker

from app.db import POOL_CONNECTIONS, session_scope
from app.errors import Forbidden, RateLimited, Unauthorized
from app.models import Owner
from app.repositories.pagination import CURSOR_DESCRIPTION, CURSOR_PATTERN
from app.services import owners as owner_service
from app.services.audit import AuditContext
from app.services.owners import CachedKey
from app.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API key, `ek_…` (`epochly keys create --owner NAME`)")


# Threads for blocking work (sync routes, database reads of async routes). Few: Python work in
# threads competes with the event loop for the GIL, each busy one holding it up to 5 ms at a turn.
# Under 200 connections on a mix of routes (tests/integration/test_read_path.py), the slowest
# answer took 2.8-3.5 s with 16 threads and 1.4-1.7 s with 8, for the same throughput.
THREADS = 8
# Threads of their own for the reads that everything else waits on: filling the in-memory views
# (app/api/views.py, one read shared by every poller of a job) and looking up a key. In the common
# threadpool they queued behind bulk requests (dataset and sweep lists), and with 200 connections
# on a mix of routes a poll of a cached job then waited seconds for its refill.
VIEW_READ_THREADS = 4
# Requests that may hold a session (and so a pooled connection) at once. A sync route's response is
# serialized in a threadpool thread *before* its session closes (FastAPI runs function-scoped
# teardown after serialization), so without this cap the sessions of waiting requests can hold
# every connection while all threads wait for one: deadlock. With SESSION_SLOTS + THREADS +
# VIEW_READ_THREADS connections at most, a thread always finds one.
SESSION_SLOTS = POOL_CONNECTIONS - THREADS - VIEW_READ_THREADS


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's one unit of work, committed when the route returns (routes that must act after
    their commit, such as a 201 with a Location, commit themselves).

    Function scope (below): the session closes as soon as the route has returned and its answer is
    serialized, not when the response has been sent, so a stream holds no connection for its
    lifetime. Async, so that the teardown runs on the event loop and never waits for a threadpool
    slot itself; waiting for a slot (SESSION_SLOTS) happens here, holding nothing."""
    async with request.app.state.session_slots:
        with session_scope(request.app.state.session_factory) as session:
            yield session


T = TypeVar("T")


async def in_view_thread(state: Any, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` on one of the VIEW_READ_THREADS (state.view_reads)."""
    return await asyncio.get_running_loop().run_in_executor(state.view_reads, partial(work, *args))


async def in_session(request: Request, work: Callable[[Session], T]) -> T:
    """`work` in a unit of work of its own, in a threadpool thread: for async routes, whose answer is
    then serialized on the event loop, after the session has closed (no SESSION_SLOTS needed)."""

    def run() -> T:
        with session_scope(request.app.state.session_factory) as session:
            return work(session)

    return await run_in_threadpool(run)


def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Methods that change nothing: all a `read` key may call.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def current_key(request: Request, credentials: Credentials) -> CachedKey:
    """The calling key, whatever its scope."""
    return await authenticate(request, credentials)


async def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> CachedKey:
    """The calling key, checked and counted against its rate limit once per request, however many
    dependencies ask for it.

    The hot path (a poller's every request) runs on the event loop: one cache lookup and one leased
    token, no thread and no database. A cache miss and the once-a-minute last_used_at write go to the
    threadpool; a lease renewal is one asyncio Redis call, seldom waited for (app/services/ratelimit.py)."""
    known: CachedKey | None = getattr(request.state, "key", None)
    if known is not None:
        return known
    if credentials is None:
        raise Unauthorized("missing API key: send `Authorization: Bearer ek_…`")
    state = request.app.state
    key = state.key_cache.get(credentials.credentials)
    if key is None:  # every 30 s for a busy key (KeyCache's TTL): one lookup for all its waiting requests
        secret = credentials.credentials
        key = await state.single_flight(("key", secret), lambda: in_view_thread(state, _look_up_key, state, secret))
    if key.expired():
        state.refusals.count(key.key_id, 401)
        raise Unauthorized(owner_service.expired_detail(key.expires_at))
    verdict = await state.rate_limiter.acquire(key.key_id)
    request.state.ratelimit = verdict
    if verdict is not None and not verdict.allowed:
        state.refusals.count(key.key_id, 429)
        raise RateLimited(
            f"this key is over its limit of {verdict.limit} requests a minute; try again in {verdict.retry_after_s} s",
            verdict.retry_after_s,
        )
    if state.key_cache.touch_due(key.key_id):
        await in_view_thread(state, _touch, state, key.key_id)
    request.state.key = key
    return key


def _look_up_key(state: Any, secret: str) -> CachedKey:
    with session_scope(state.session_factory) as session:
        found = owner_service.find_key(session, secret)
        if found is None:
            raise Unauthorized("the API key is not valid")
        record, owner = found
        if record.revoked_at is not None:
            state.refusals.count(record.id, 401)
            raise Unauthorized("the API key is not valid")
        # Detached and loaded: the cached owner is shared by later requests.
        session.expunge(owner)
        return state.key_cache.put(secret, record, owner)


def _touch(state: Any, key_id: str) -> None:
    with session_scope(state.session_factory) as session:
        owner_service.touch_key(session, key_id)


CurrentKeyDep = Annotated[CachedKey, Depends(current_key, scope="function")]


async def current_owner(request: Request, credentials: Credentials) -> Owner:
    """The calling key's owner; a `read` key may only read (403 on any write). It authenticates
    itself rather than depending on current_key: each level of dependencies costs every request."""
    key = await authenticate(request, credentials)
    if key.scope != "write" and request.method not in READ_METHODS:
        request.app.state.refusals.count(key.key_id, 403)
        raise Forbidden("this API key has scope `read`: it may only read (GET routes and streams)")
    return key.owner


async def audit_context(request: Request, key: CurrentKeyDep) -> AuditContext:
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
