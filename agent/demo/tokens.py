"""The simulator's OAuth2 token endpoint (client credentials): short-lived bearer tokens, checked by the
API routes. It can be mounted on its own server, so that a test can stop the token endpoint alone."""
from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web

from ..clock import Clock, SystemClock


@dataclass
class TokenIssuer:
    client_id: str = "demo-client"
    client_secret: str = "demo-secret"
    ttl: float = 300.0
    clock: Clock = field(default_factory=SystemClock)
    issued: dict[str, float] = field(default_factory=dict)  # token -> expiry (clock.monotonic)
    requests: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        form = await request.post()
        client = self._client(request, form)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if client != (self.client_id, self.client_secret):
            return web.json_response({"error": "invalid_client"}, status=401)
        now = self.clock.monotonic()
        self.issued = {t: exp for t, exp in self.issued.items() if exp > now}
        token = secrets.token_urlsafe(24)
        self.issued[token] = now + self.ttl
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": self.ttl})

    @staticmethod
    def _client(request: web.Request, form) -> tuple[str, str] | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return unquote(user), unquote(pw)
        if "client_id" in form:
            return str(form.get("client_id")), str(form.get("client_secret", ""))
        return None

    def valid(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        return self.issued.get(token, 0.0) > self.clock.monotonic()

    def revoke_all(self) -> None:
        """Every token given so far stops working (the API then answers 401)."""
        self.issued.clear()
