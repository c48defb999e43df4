"""Typed dependencies shared by the routes."""
from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from celery import Celery
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.db import session_scope
from app.errors import Unauthorized
from app.models import Owner
from app.services import owners as owner_service
from app.settings import Settings

T = TypeVar("T")
bearer = HTTPBearer(auto_error=False, description="An API key, `ek_…` (`epochly keys create --owner NAME`)")


async def get_session(request: Request) -> AsyncIterator[Session]:
    # Closed as soon as the route function returns (scope="function" below), on the event loop:
    # a session kept until the response is sent holds its connection while the response waits for
    # a threadpool slot to serialize, and under load every slot waits for a connection: deadlock.
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


async def in_session(request: Request, work: Callable[[Session], T]) -> T:
    """Run `work` in the threadpool with a session that is closed before the thread is given back.

    For the polled hot paths: nothing of the request holds a pooled connection while its response
    waits to be serialized, so heavy polling cannot exhaust the pool."""

    def run() -> T:
        with session_scope(request.app.state.session_factory) as session:
            return work(session)

    return await run_in_threadpool(run)


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


def current_owner(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Owner:
    if credentials is None:
        raise Unauthorized("missing API key: send `Authorization: Bearer ek_…`")
    owner = request.app.state.key_cache.get(credentials.credentials)
    if owner is None:
        # Its own short session: streaming routes must not hold a pooled connection for their lifetime.
        with session_scope(request.app.state.session_factory) as session:
            owner = owner_service.authenticate(session, credentials.credentials)
        if owner is None:
            raise Unauthorized("the API key is not valid")
        request.app.state.key_cache.put(credentials.credentials, owner)
    return owner


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
OwnerDep = Annotated[Owner, Depends(current_owner)]
