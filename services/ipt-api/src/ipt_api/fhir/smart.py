"""SMART App Launch discovery: `/.well-known/smart-configuration` and the CapabilityStatement's
`rest.security`, both from the settings (the identity provider's endpoints).

The API is a resource server; tokens come from the hospital's identity provider. These two
documents tell clients where to get them and which scopes this server understands.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ipt_api.deps import SettingsDep
from ipt_api.settings import ApiSettings
from ipt_core.fhir.errors import ResourceNotFound
from ipt_core.fhir.registry import REGISTRY

__all__ = ["capability_security", "scopes_supported", "smart_configuration", "smart_router"]

_OAUTH_URIS: Final = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_SECURITY_SERVICE: Final = "http://terminology.hl7.org/CodeSystem/restful-security-service"
_BASE_CAPABILITIES: Final = ("permission-v1", "permission-v2", "client-confidential-asymmetric")
_LAUNCH_CAPABILITIES: Final = ("launch-standalone", "client-confidential-symmetric")

smart_router = APIRouter(prefix="/fhir", tags=["FHIR"])


@smart_router.get(
    "/.well-known/smart-configuration",
    summary="SMART on FHIR discovery (no token needed)",
    response_class=JSONResponse,
)
async def well_known(settings: SettingsDep) -> JSONResponse:
    """Where to get tokens and which scopes and capabilities this server supports."""
    document = smart_configuration(settings)
    if document is None:
        raise ResourceNotFound(
            "SMART discovery is not configured: set IPT_AUTH_TOKEN_ENDPOINT "
            "(the identity provider's token endpoint)"
        )
    return JSONResponse(document)


def smart_configuration(settings: ApiSettings) -> dict[str, Any] | None:
    """The discovery document, or None without a configured token endpoint."""
    if settings.auth_mode != "jwt" or not settings.auth_token_endpoint:
        return None
    authorize = settings.auth_authorization_endpoint
    document: dict[str, Any] = {
        "issuer": settings.auth_issuer,
        "token_endpoint": settings.auth_token_endpoint,
        "grant_types_supported": [
            "client_credentials",
            *(["authorization_code"] * bool(authorize)),
        ],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": scopes_supported(),
        "capabilities": list(settings.auth_capabilities or _capabilities(bool(authorize))),
        "code_challenge_methods_supported": ["S256"],
    }
    if settings.auth_jwks and settings.auth_jwks.startswith("https://"):
        document["jwks_uri"] = settings.auth_jwks
    if authorize:
        document["authorization_endpoint"] = authorize
        document["response_types_supported"] = ["code"]
    return document


def capability_security(settings: ApiSettings) -> dict[str, Any] | None:
    """`CapabilityStatement.rest.security`: SMART-on-FHIR, with the oauth-uris extension."""
    if settings.auth_mode != "jwt":
        return None
    security: dict[str, Any] = {
        "cors": False,
        "service": [
            {
                "coding": [{"system": _SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
            }
        ],
        "description": (
            "Bearer tokens (JWT) from the identity provider; SMART v1 and v2 scopes are "
            "enforced per interaction. Discovery: .well-known/smart-configuration."
        ),
    }
    uris = [
        {"url": name, "valueUri": value}
        for name, value in (
            ("token", settings.auth_token_endpoint),
            ("authorize", settings.auth_authorization_endpoint),
        )
        if value
    ]
    if uris:
        security["extension"] = [{"url": _OAUTH_URIS, "extension": uris}]
    return security


def scopes_supported() -> list[str]:
    """The scopes this server enforces: v2 and v1, system and user, per type and wildcard."""
    scopes = ["system/*.cruds", "system/*.rs", "system/*.read", "system/*.write"]
    scopes += ["user/*.cruds", "user/*.rs", "user/*.read", "user/*.write"]
    for resource_type in sorted(REGISTRY):
        scopes += [f"system/{resource_type}.cruds", f"user/{resource_type}.rs"]
    return scopes


def _capabilities(launch: bool) -> tuple[str, ...]:
    return (*_BASE_CAPABILITIES, *(_LAUNCH_CAPABILITIES if launch else ()))
