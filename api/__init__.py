"""seawall's caller side: commands, the client stub, and the errors a caller sees."""

from api.client import Client, configure, default_client
from api.command import Command
from api import compose
from api.context import RequestContext, current_context, request_context, spawn
from api.errors import (
    BadRequest,
    CommandError,
    CommandFailed,
    CommandTimeout,
    Rejected,
    RemoteCause,
    ShortCircuited,
    WorkerLost,
)

__all__ = [
    "BadRequest",
    "Client",
    "Command",
    "CommandError",
    "CommandFailed",
    "CommandTimeout",
    "Rejected",
    "RemoteCause",
    "ShortCircuited",
    "WorkerLost",
    "compose",
    "RequestContext",
    "configure",
    "current_context",
    "default_client",
    "request_context",
    "spawn",
]
