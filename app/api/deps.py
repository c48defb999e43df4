"""Typed dependencies shared by the routes."""

from collections.abc import AsyncIterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from app.db import session_scope
from app.errors import Unauthorized
from app.models import Owner
from app.repositories.pagination import CURSOR_DESCRIPTION, CURSOR_PATTERN
from app.services import owners as owner_service
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


def current_owner(
    request: Request, session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Owner:
    if credentials is None:
        raise Unauthorized("missing API key: send `Authorization: Bearer ek_…`")
    owner = request.app.state.key_cache.get(credentials.credentials)
    if owner is None:
        owner = owner_service.authenticate(session, credentials.credentials)
        if owner is None:
            raise Unauthorized("the API key is not valid")
        # Detached and loaded: the cached owner is shared by later requests, which a rollback here must not expire.
        session.expunge(owner)
        session.commit()  # end the read here: a long route (a submit's spec check) must not hold it open
        request.app.state.key_cache.put(credentials.credentials, owner)
    return owner


SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
OwnerDep = Annotated[Owner, Depends(current_owner, scope="function")]
CursorQuery = Annotated[str | None, Query(pattern=CURSOR_PATTERN, description=CURSOR_DESCRIPTION)]
