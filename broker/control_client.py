"""Ask the broker something over its control socket (what ``seawall`` and tests use).

Blocking plain pyzmq with a deadline, so a CLI never hangs on a broker that is down.
"""

from __future__ import annotations

from typing import Any

import zmq

from shared import protocol
from shared.config import Config
from shared.security import secure_client
from shared.transport import make_socket


class ControlError(Exception):
    """The broker did not answer, or answered with an error."""


def control_request(endpoint: str, action: str, arguments: dict[str, Any] | None = None,
                    timeout_s: float = 2.0, *, config: Config | None = None) -> dict[str, Any]:
    """One request; ``config`` gives the CLI's CURVE keys for a tcp endpoint."""
    sock = make_socket(zmq.DEALER)
    try:
        if config is not None:
            secure_client(sock, config, "cli", endpoint)
        sock.connect(endpoint)
        sock.send_multipart(protocol.control(action, arguments))
        if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            raise ControlError(f"the broker at {endpoint} did not answer {action!r} within {timeout_s:g} s")
        message = protocol.decode(sock.recv_multipart())
    except protocol.ProtocolError as exc:
        raise ControlError(f"the broker's answer to {action!r} is malformed: {exc}") from exc
    finally:
        sock.close(linger=0)
    if type(message) is not protocol.ControlReply:
        raise ControlError(f"the broker answered {action!r} with {type(message).__name__}")
    if not message.ok:
        raise ControlError(message.data.get("error", f"the broker refused {action!r}"))
    return message.data
