"""Who is calling: the tenant behind the request's API key (`Authorization: Bearer <key>`), or 401."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from voiceline.api_keys import tenant_for_key

_bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                     description="An admin API key, sent as `Authorization: Bearer vl_…` (see `make admin-key`).")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_INVALID = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def current_tenant(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The tenant_id the presented key belongs to; 401 when the key is missing or not a valid key."""
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, headers=_CHALLENGE,
                            detail="missing API key: send the header Authorization: Bearer <key>")
    tenant_id = tenant_for_key(credentials.credentials)
    if tenant_id is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, headers=_INVALID, detail="invalid API key")
    return tenant_id


Tenant = Annotated[str, Depends(current_tenant)]
"""A route parameter typed `Tenant` receives the caller's tenant_id."""
