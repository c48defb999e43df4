"""Typed dependencies shared by the routes."""
from collections.abc import AsyncIterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.db import session_scope
from app.errors import Unauthorized
from app.models import Owner
from app.services import owners as owner_service
from app.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API key, `ek_…` (`epochly keys create --owner NAME`)")


async def get_session(request: Request) -> AsyncIterator[Session]:
    # Async on purpose: the teardown (returning the pooled connection) then runs on the event loop.
    # A sync generator's teardown needs a threadpool slot, and under load every slot can be held by
    # requests waiting for a connection that only such a teardown would free: a deadlock.
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


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


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
OwnerDep = Annotated[Owner, Depends(current_owner)]
