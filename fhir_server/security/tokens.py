"""The OAuth 2.0 token endpoint for SMART Backend Services, and access-token verification.

A client proves who it is with a JWT client assertion signed by a key registered for it
(RS384 or ES384, RFC 7523 ``private_key_jwt``) and receives a short-lived bearer token
carrying its identity: client id, organisation, optional PractitionerRole, granted scopes,
administrator flag. All JOSE work is done by ``joserfc``; nothing here is hand-rolled crypto.

Access tokens are JWTs signed (HS256) with one server secret shared by every worker, so any
worker verifies any token without a lookup. Replayed assertion ``jti`` values are refused
for as long as the assertion could be valid; the replay cache lives in the process, so with
several workers each keeps its own (an assertion lives at most five minutes).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from ..config import Settings
from .clients import ALGORITHMS, ClientRegistry
from .context import Caller
from .scopes import Permissions, ScopeError, grant

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = "/auth/token"
#: the longest an assertion may claim to live (SMART: no more than five minutes)
MAX_ASSERTION_LIFETIME = 300
#: tolerated clock difference with clients, in seconds
LEEWAY = 30
_ISSUER = "fhir-server"


class OAuthError(Exception):
    """An RFC 6749 error response: status, ``error`` code, description."""

    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


class InvalidToken(Exception):
    """A bearer token that is malformed, forged or expired."""


class NoBearerToken(InvalidToken):
    """An ``Authorization`` header of another scheme than Bearer, or without a token."""


def token_secret(settings: Settings) -> str:
    """The configured secret, else one generated once into the data directory (0600) and shared by workers."""
    if settings.auth_token_secret:
        return settings.auth_token_secret
    path = Path(settings.data_dir) / "auth-token-secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another worker may be writing it right now
            value = path.read_text(encoding="utf-8").strip()
            if value:
                return value
            time.sleep(0.05)
        raise RuntimeError(f"{path} is empty")
    value = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def _unverified_claims(assertion: str) -> dict:
    """The claims of a compact JWS before verification: only to learn which client's keys to use."""
    parts = assertion.split(".")
    if len(parts) != 3 or len(assertion) > 16384:
        raise OAuthError(400, "invalid_request", "client_assertion is not a compact JWS")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, TypeError):
        raise OAuthError(400, "invalid_request", "client_assertion has an unreadable payload") from None
    if not isinstance(claims, dict):
        raise OAuthError(400, "invalid_request", "client_assertion has no claims")
    return claims


class ReplayCache:
    """Assertion ``jti`` values seen, each kept until the assertion it came with has expired."""

    def __init__(self):
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, key: str, expires: float, now: float) -> bool:
        with self._lock:
            if len(self._seen) > 1024:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            if key in self._seen and self._seen[key] > now:
                return False
            self._seen[key] = expires + LEEWAY
            return True


class TokenService:
    def __init__(self, settings: Settings, registry: ClientRegistry, clock=time.time):
        self.settings = settings
        self.registry = registry
        self.clock = clock
        self.key = OctKey.import_key(token_secret(settings))
        self.replays = ReplayCache()
        #: verified ``Authorization`` header values → (caller, expiry); saves the HMAC and JSON work on every request
        self._verified: OrderedDict[bytes, tuple[Caller, float]] = OrderedDict()
        self._verified_lock = threading.Lock()

    # ---- issuing ----------------------------------------------------------------------------

    def issue(self, form: dict, token_url: str) -> dict:
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError(400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion")
        if not assertion:
            raise OAuthError(400, "invalid_request", "client_assertion is required")
        claims = _unverified_claims(assertion)
        client_id = claims.get("iss")
        client = self.registry.get(client_id) if isinstance(client_id, str) else None
        if client is None:
            raise OAuthError(401, "invalid_client", "unknown client")
        if form.get("client_id") not in (None, "", client_id):
            raise OAuthError(401, "invalid_client", "client_id does not match the assertion's issuer")
        try:
            token = jwt.decode(assertion, KeySet.import_key_set(client.jwks), algorithms=list(ALGORITHMS))
        except JoseError as exc:
            raise OAuthError(401, "invalid_client", f"client assertion not verified: {exc.error}") from None
        except ValueError:
            raise OAuthError(401, "invalid_client", "client assertion not verified") from None
        now = self.clock()
        verified = token.claims
        registry = jwt.JWTClaimsRegistry(
            now=int(now), leeway=LEEWAY,
            iss={"essential": True, "value": client_id},
            sub={"essential": True, "value": client_id},
            aud={"essential": True, "value": token_url},
            exp={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(verified)
        except JoseError as exc:
            raise OAuthError(401, "invalid_client", f"client assertion rejected: {exc.description or exc.error}") \
                from None
        exp = verified["exp"]
        if not isinstance(exp, (int, float)) or exp > now + MAX_ASSERTION_LIFETIME + LEEWAY:
            raise OAuthError(401, "invalid_client", "client assertion lives longer than five minutes")
        if not self.replays.first_use(f"{client_id}\x00{verified['jti']}", exp, now):
            raise OAuthError(401, "invalid_client", "client assertion jti was already used")
        try:
            scopes = grant(form.get("scope") or "", list(client.scopes))
        except ScopeError as exc:
            raise OAuthError(400, "invalid_scope", str(exc)) from None
        lifetime = self.settings.auth_token_lifetime
        access = {"iss": _ISSUER, "sub": client_id, "org": client.organization, "scope": " ".join(scopes),
                  "adm": client.admin, "iat": int(now), "exp": int(now) + lifetime, "jti": uuid.uuid4().hex}
        if client.practitioner_role:
            access["role"] = client.practitioner_role
        encoded = jwt.encode({"alg": "HS256", "typ": "JWT"}, access, self.key, algorithms=["HS256"])
        return {"access_token": encoded, "token_type": "bearer", "expires_in": lifetime, "scope": " ".join(scopes)}

    # ---- verifying --------------------------------------------------------------------------

    def verify(self, authorization: bytes | None) -> Caller:
        """The caller a raw ``Authorization`` header value (``Bearer <access token>``) authenticates; raises
        :class:`NoBearerToken` for no header, another scheme or no token, :class:`InvalidToken` for a bad token.

        A client sends the same header with every request until its token expires, so verified headers are
        remembered as they come (bytes): a repeat costs one dict read, an expiry test and a registry look."""
        now = self.clock()
        cached = self._verified.get(authorization)  # one atomic dict read; the lock guards filling and trimming
        if cached is not None:
            caller, exp = cached
            if exp <= now:
                raise InvalidToken("the access token has expired")
            if self.registry.get(caller.client_id) is None:
                raise InvalidToken("the client is no longer registered")
            return caller
        if authorization is None:
            raise NoBearerToken("no Authorization header")
        scheme, _, access_token = authorization.decode("latin-1").partition(" ")
        access_token = access_token.strip()
        if scheme.lower() != "bearer" or not access_token:
            raise NoBearerToken("not a bearer token")
        try:
            token = jwt.decode(access_token, self.key, algorithms=["HS256"])
            jwt.JWTClaimsRegistry(now=int(now), iss={"essential": True, "value": _ISSUER},
                                  exp={"essential": True}, sub={"essential": True}).validate(token.claims)
        except JoseError as exc:
            raise InvalidToken(exc.description or exc.error) from None
        except ValueError:
            raise InvalidToken("malformed access token") from None
        claims = token.claims
        client = self.registry.get(claims["sub"])
        if client is None:  # deregistered since the token was issued
            raise InvalidToken("the client is no longer registered")
        scopes = tuple(str(claims.get("scope", "")).split())
        caller = Caller(client_id=claims["sub"], organization=claims.get("org", ""),
                        practitioner_role=claims.get("role"), scopes=scopes, admin=bool(claims.get("adm")),
                        permissions=Permissions.of(scopes))
        with self._verified_lock:
            self._verified[authorization] = (caller, float(claims["exp"]))
            while len(self._verified) > 10000:
                self._verified.popitem(last=False)
        return caller


def smart_configuration(base: str) -> dict:
    """``/.well-known/smart-configuration`` for backend services."""
    return {
        "issuer": base,
        "token_endpoint": f"{base}{TOKEN_PATH}",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "scopes_supported": ["system/*.read", "system/*.write", "system/*.cruds", "system/*.rs"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }


def capability_security(base: str) -> dict:
    """The CapabilityStatement ``rest.security`` element advertising SMART backend services."""
    return {
        "cors": False,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR"}], "text": "OAuth2 using SMART Backend Services"}],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": f"{base}{TOKEN_PATH}"}],
        }],
        "description": "SMART Backend Services: client_credentials with a private_key_jwt client assertion "
                       "(RS384/ES384); bearer tokens required on every FHIR interaction.",
    }


__all__ = ["TokenService", "OAuthError", "InvalidToken", "smart_configuration", "capability_security",
           "ASSERTION_TYPE", "TOKEN_PATH"]
