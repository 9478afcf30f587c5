"""CURVE on every ``tcp://`` socket: who a process is, and which broker it trusts.

Across hosts anyone on the network could connect to a broker, so every ``tcp://`` socket
is encrypted and authenticated with ZeroMQ's CURVE: the broker is the server with its own
key pair and admits only the public keys in its allowed-keys directory (broker/zap.py);
fronts, workers and the CLI each connect with their own key pair and the broker's public
key. ``ipc://`` sockets stay plain: the file system's permissions guard them. Keys are
files in pyzmq's certificate format (``zmq.auth``), made by ``seawall keys generate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, overload

import zmq
import zmq.auth

from shared.config import Config, ConfigError

#: The ZAP domain the broker's sockets authenticate in.
ZAP_DOMAIN = b"seawall"
#: Roles that connect to a broker, each with its own key pair (``[security] ROLE_key``).
ROLES = ("front", "worker", "cli")


def needs_curve(endpoint: str) -> bool:
    return endpoint.startswith("tcp://")


def generate_key_pair(keys_dir: str | Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public: hand it out) and NAME.key_secret (keep it here)."""
    directory = Path(keys_dir)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise FileExistsError(f"{path} exists; remove it first to replace the key pair")
    public_path, secret_path = zmq.auth.create_certificates(str(directory), name)
    Path(secret_path).chmod(0o600)
    return Path(public_path), Path(secret_path)


@overload
def _load(config: Config, setting: str, name: str, secret: Literal[True]) -> tuple[bytes, bytes]: ...
@overload
def _load(config: Config, setting: str, name: str, secret: Literal[False]) -> tuple[bytes, bytes | None]: ...


def _load(config: Config, setting: str, name: str, secret: bool) -> tuple[bytes, bytes | None]:
    """The public key, and with ``secret`` the secret key too (a key pair without one is refused)."""
    keys_dir = Path(config.security_setting("keys_dir"))
    path = keys_dir / f"{name}.key_secret" if secret else keys_dir / f"{name}.key"
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        kind = "key pair" if secret else "public key"
        raise ConfigError(f"security.{setting}", f"no usable {kind} {name!r} at {path} ({exc}); make one with "
                          f"`seawall keys generate {name}`", config.source) from None
    if secret and not secret_key:
        raise ConfigError(f"security.{setting}", f"{path} holds no secret key", config.source)
    return public, secret_key


def secure_server(sock: zmq.Socket, config: Config, endpoint: str) -> None:
    """Make ``sock`` a CURVE server if it will bind a tcp endpoint; call before bind."""
    if not needs_curve(endpoint):
        return
    public, secret = _load(config, "broker_key", config.security_setting("broker_key"), secret=True)
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)


def secure_client(sock: zmq.Socket, config: Config, role: str, endpoint: str, server_key: str | None = None) -> None:
    """Give ``sock`` this role's key pair and the broker's public key if ``endpoint`` is
    tcp; call before connect. ``server_key`` names another broker's key."""
    if not needs_curve(endpoint):
        return
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    setting = f"{role}_key"
    public, secret = _load(config, setting, config.security_setting(setting), secret=True)
    server_name = server_key or config.security_setting("broker_key")
    server_public, _ = _load(config, "broker_key", server_name, secret=False)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)


def check_keys(config: Config, roles: tuple[str, ...]) -> None:
    """Fail at start, naming the key, rather than at the first tcp connect."""
    if not any(needs_curve(endpoint) for endpoint in config.endpoints.values()) and not any(
            needs_curve(link["front"]) for link in config.brokers.values()):
        return
    for role in roles:
        if role == "broker":
            _load(config, "broker_key", config.security_setting("broker_key"), secret=True)
        else:
            setting = f"{role}_key"
            _load(config, setting, config.security_setting(setting), secret=True)
