"""Endpoints of the example pool: ``/example/home?user=N`` composes two calls into one answer."""

from __future__ import annotations

from api import compose
from examples.commands import GetGreeting, GetUserName


def home(request):
    """A greeting (falls back to a generic one) and the user's name (or none, degraded)."""
    text = request.query.get("user", "1")
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        return 400, {"error": f"user must be a non-negative integer, got {text[:50]!r}"}
    user_id = int(text)
    greeting = GetGreeting(user_id=user_id).observe()
    name = compose.catch(GetUserName(user_id=user_id).observe(), lambda error: None)
    return compose.zip(greeting, name, combine=lambda text, user: {"greeting": text, "user": user})


ROUTES = {"home": home}
