"""The ``Command`` base class: one call to a dependency, with its arguments and settings.

Service code subclasses it. Annotated class attributes are the command's arguments
(its *fields*), sent to the worker as msgpack; plain class attributes named like a
setting (``timeout_s``, ``breaker_error_pct``, ...) are its settings, which the config
file can override per command.
"""

from __future__ import annotations

import copy
import inspect
import typing
from typing import TYPE_CHECKING, Any, ClassVar

from gevent.event import AsyncResult

from shared import protocol
from shared.config import COMMAND_SETTINGS, ConfigError

if TYPE_CHECKING:
    from api.errors import CommandError

#: Class attributes that belong to the command's definition, not its arguments.
RESERVED_NAMES = frozenset({"dependency", "key", "collapse"}) | frozenset(COMMAND_SETTINGS)

_NO_DEFAULT = object()
#: The payload of a command without fields: an empty argument map.
_NO_ARGUMENTS = protocol.encode_value({})


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is ClassVar or typing.get_origin(annotation) is ClassVar


class Command:
    """Base class of every command; see DESIGN.md for the whole life of a call."""

    #: The worker pool that runs this command; None runs it in the caller (semaphore).
    dependency: ClassVar[str | None] = None
    #: Command key for breakers, metrics and config; the class name unless set.
    key: ClassVar[str] = "Command"
    #: Collapse bursts of calls into batches run by ``run_batch``: "global" (across every
    #: front, in the broker), "request" (within one request context, in the front), or None.
    collapse: ClassVar[str | None] = None

    #: The arguments as msgpack, made once when the command is built (no arguments: this).
    _payload: bytes = _NO_ARGUMENTS
    _fields: ClassVar[tuple[str, ...]] = ()
    _field_defaults: ClassVar[dict[str, Any]] = {}
    #: Fields whose default is a list or dict, copied for each command.
    _copied_defaults: ClassVar[frozenset[str]] = frozenset()
    #: Why this call falls back, set just before fallback() runs (see execution_error).
    _execution_error: CommandError | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields = _field_names(cls)  # before the key is set: ``key: str`` alone is refused
        if "key" not in cls.__dict__:
            cls.key = cls.__name__
        _check_definition(cls)
        cls._field_defaults = {name: default for name in cls._fields
                               if (default := _class_value(cls, name)) is not _NO_DEFAULT}
        cls._copied_defaults = frozenset(name for name, default in cls._field_defaults.items()
                                         if isinstance(default, (list, dict)))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        if not (args or kwargs or cls._fields):
            # No arguments to check or encode (their msgpack was most of a no-op call's
            # build): the class's _payload, of no arguments, is this command's
            return
        values = cls._values_of(args, kwargs)
        fields = self.__dict__  # fields are set here only: __setattr__ refuses them
        fields["_payload"] = _encode_arguments(cls.key, values)
        fields.update(values)

    def __setattr__(self, name: str, value: Any) -> None:
        """Arguments are fixed once built: the payload sent, and the request cache's key,
        were made from them. Other attributes are the command's own business."""
        if name in type(self)._fields:
            raise AttributeError(f"{type(self).key}.{name} is an argument, fixed when the command is built "
                                 f"(it was encoded then); build a new {type(self).__name__} instead")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name in type(self)._fields:
            raise AttributeError(f"{type(self).key}.{name} is an argument and cannot be deleted")
        object.__delattr__(self, name)

    @classmethod
    def _values_of(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Every field's value, from the constructor's arguments and the fields' defaults."""
        if len(args) > len(cls._fields):
            raise TypeError(f"{cls.key} takes {len(cls._fields)} arguments ({', '.join(cls._fields)}), got {len(args)}")
        values = dict(zip(cls._fields, args))
        for name, value in kwargs.items():
            if name not in cls._fields:
                raise TypeError(f"{cls.key} has no argument {name!r} (it takes: {', '.join(cls._fields) or 'none'})")
            if name in values:
                raise TypeError(f"{cls.key} got argument {name!r} twice")
            values[name] = value
        for name in cls._fields:
            if name not in values:
                if name not in cls._field_defaults:
                    raise TypeError(f"{cls.key} is missing argument {name!r}")
                values[name] = cls._default(name)
        return values

    @classmethod
    def _default(cls, name: str) -> Any:
        """A field's default; a list or dict is copied, so no two commands share one."""
        default = cls._field_defaults[name]
        return copy.deepcopy(default) if name in cls._copied_defaults else default

    @classmethod
    def from_wire(cls, arguments: Any, payload: bytes) -> Command:
        """Rebuild a command from the arguments a caller sent (no re-encoding).

        A field the caller did not send takes its default, so a pool can be deployed with a
        new optional argument before the fronts that send it. An argument this class does
        not take is an error: the caller is newer than this worker.
        """
        if not isinstance(arguments, dict):
            raise TypeError(f"{cls.key} takes arguments {sorted(cls._fields)}, the caller sent "
                            f"{type(arguments).__name__}")
        fields = cls._fields
        if len(arguments) != len(fields) or not all(name in arguments for name in fields):
            said = f"{cls.key} takes arguments {sorted(fields)}, the caller sent {sorted(map(str, arguments))}"
            unknown = sorted(str(name) for name in arguments if name not in fields)
            if unknown:
                raise TypeError(f"{said}: {unknown} unknown here (is the caller newer than this worker?)")
            missing = [name for name in fields if name not in arguments]
            without_default = [name for name in missing if name not in cls._field_defaults]
            if without_default:
                raise TypeError(f"{said}: {without_default} missing, with no default")
            arguments = {**arguments, **{name: cls._default(name) for name in missing}}
        command = cls.__new__(cls)
        command.__dict__.update(arguments)
        command.__dict__["_payload"] = payload
        return command

    @property
    def arguments(self) -> dict[str, Any]:
        return {name: self.__dict__[name] for name in type(self)._fields}

    # -- what service code overrides ---------------------------------------------------

    def run(self) -> Any:
        """The call to the dependency; runs in a worker of ``dependency``'s pool."""
        raise NotImplementedError(f"{type(self).key} must define run()")

    def fallback(self) -> Any:
        """The answer when run() fails, times out, is rejected or short-circuited; which
        of them, and the remote cause, is :attr:`execution_error`."""
        raise NotImplementedError  # replaced in subclasses; see has_fallback()

    @property
    def execution_error(self) -> CommandError | None:
        """In :meth:`fallback`: why this call falls back, as Hystrix's
        ``getExecutionException()`` says it. A :class:`~api.errors.CommandError`, whose
        ``failure`` is the event (``TIMEOUT``, ``FAILURE``, ``SHORT_CIRCUITED``,
        ``THREAD_POOL_REJECTED``, ...) and ``cause`` the remote exception's type and
        message, if any; a fallback may answer a timeout otherwise than a failure. None
        before the call ends."""
        return self._execution_error

    def cache_key(self) -> Any:
        """A key to de-duplicate identical calls within one request context; None = off."""
        return None

    @classmethod
    def run_batch(cls, calls: list[Command]) -> list[Any]:
        """For collapsing commands: run many calls at once, in a worker; one result per
        call, in order. An exception instance in the list fails only its own call."""
        raise NotImplementedError(f"{cls.key} collapses calls and must define run_batch(cls, calls)")

    def shard(self) -> Any:
        """Calls with different shards never share a batch; None = one shard."""
        return None

    @classmethod
    def class_settings(cls) -> dict[str, Any]:
        """The settings this class (or a base below Command) sets as attributes."""
        return {name: getattr(cls, name) for name in COMMAND_SETTINGS if hasattr(cls, name)}

    @classmethod
    def has_fallback(cls) -> bool:
        return cls.fallback is not Command.fallback

    # -- running it ---------------------------------------------------------------------

    def execute(self, client: Any = None) -> Any:
        """Run the command and return its value, its fallback's value, or raise."""
        return _client(client).execute(self)

    def queue(self, client: Any = None) -> AsyncResult:
        """Start the command; the future resolves as ``execute()`` would return."""
        return _client(client).queue(self)

    def observe(self, client: Any = None) -> Any:
        """Start the command; an :class:`api.compose.Observable` of its one value (or error)."""
        from api.compose import from_call

        chosen = _client(client)
        return from_call(lambda: chosen.execute(self))

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={self.__dict__.get(name)!r:.40}" for name in type(self)._fields)
        return f"{type(self).key}({arguments})"


def _client(client: Any) -> Any:
    if client is not None:
        return client
    from api.client import default_client

    return default_client()


def _field_names(cls: type[Command]) -> tuple[str, ...]:
    """The annotated attributes of ``cls`` and its bases, base fields first.

    A name the command itself uses (a setting, ``key``, a method) cannot be an argument: it
    is refused here, naming the class, rather than silently not being a field.
    """
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        for name, annotation in klass.__dict__.get("__annotations__", {}).items():
            if name.startswith("_") or _is_classvar(annotation):
                continue
            if name in RESERVED_NAMES:
                if name in klass.__dict__:  # ``timeout_s: float = 0.2``: a setting, typed
                    continue
                raise TypeError(f"{klass.__qualname__}.{name}: {name!r} names the command's own "
                                f"{'setting' if name in COMMAND_SETTINGS else 'definition'}, so it cannot be an "
                                "argument; give the argument another name")
            if name in _COMMAND_MEMBERS:
                raise TypeError(f"{klass.__qualname__}.{name}: {name!r} is a method of every Command, so it cannot be "
                                "an argument; give the argument another name")
            names[name] = None
    return tuple(names)


def _class_value(cls: type, name: str) -> Any:
    """``name``'s value on the most derived class that sets it (a subclass may change a
    field's default without annotating it again), else _NO_DEFAULT."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return _NO_DEFAULT


def _check_definition(cls: type[Command]) -> None:
    """Reject bad settings when the class is defined, naming the class and attribute."""
    dependency = cls.__dict__.get("dependency", cls.dependency)
    if dependency is not None and (
        not isinstance(dependency, str) or not 0 < len(dependency) <= protocol.MAX_NAME_CHARS
    ):
        raise ConfigError(f"{cls.__qualname__}.dependency", f"expected a pool name or None, got {dependency!r}")
    if not isinstance(cls.key, str) or not 0 < len(cls.key) <= protocol.MAX_NAME_CHARS:
        raise ConfigError(f"{cls.__qualname__}.key", f"expected a name, got {cls.key!r}")
    if cls.collapse not in (None, "global", "request"):
        raise ConfigError(f"{cls.__qualname__}.collapse", f"expected 'global', 'request' or None, got {cls.collapse!r}")
    if cls.collapse is not None and cls.dependency is None:
        raise ConfigError(f"{cls.__qualname__}.collapse", "only commands with a dependency (a worker pool) collapse")
    if cls.collapse is not None:
        _check_run_batch(cls)
    for name, setting in COMMAND_SETTINGS.items():
        if name in cls.__dict__:
            try:
                setting.check(cls.__dict__[name])
            except ValueError as exc:
                raise ConfigError(f"{cls.__qualname__}.{name}", str(exc)) from None


def _check_run_batch(cls: type[Command]) -> None:
    """A collapsing command's calls run only through ``run_batch``: without one (or with
    one a worker cannot call on the class) every batch would fail, at its first call.

    The reverse, ``run_batch`` without ``collapse``, is allowed: a base class may define
    it for subclasses that collapse, and a command with both ``run`` and ``run_batch``
    stops collapsing by setting ``collapse = None``.
    """
    run_batch = inspect.getattr_static(cls, "run_batch")
    if run_batch is vars(Command)["run_batch"]:
        raise TypeError(f"{cls.__qualname__} sets collapse = {cls.collapse!r} but defines no run_batch: "
                        "a collapsing command's calls run in batches; define the classmethod "
                        "run_batch(cls, calls), returning one result per call, or set collapse = None")
    if not isinstance(run_batch, (classmethod, staticmethod)):
        raise TypeError(f"{cls.__qualname__}.run_batch must be a classmethod (a worker calls it on the class, "
                        f"with the list of calls): add @classmethod, got {type(run_batch).__name__}")


def _encode_arguments(command_key: str, values: dict[str, Any]) -> bytes:
    try:
        payload = protocol.encode_value(values)
    except TypeError:
        for name, value in values.items():
            try:
                protocol.encode_value(value)
            except TypeError as exc:
                raise TypeError(
                    f"{command_key}: argument {name!r} ({type(value).__name__}) {exc}; "
                    "arguments must be None, bool, int, float, str, bytes, or lists/dicts of them"
                ) from None
        raise
    for name, value in values.items():
        if type(value) not in _SCALAR_TYPES and (key := protocol.undecodable_key(value)) is not None:
            raise TypeError(f"{command_key}: argument {name!r} has a map key {key!r:.60}, a tuple: it would reach "
                            "the worker as a list, which cannot be a key; use str, int, float, bool, bytes or None keys")
    if len(payload) > protocol.MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"{command_key}: arguments encode to {len(payload)} bytes, over the {protocol.MAX_PAYLOAD_BYTES} limit"
        )
    return payload


#: What every Command has: an argument by one of these names would hide it.
_COMMAND_MEMBERS = frozenset(name for name in vars(Command) if not name.startswith("_")) - RESERVED_NAMES
#: Argument values msgpack carries as they are: no map keys to check inside.
_SCALAR_TYPES = frozenset({int, float, str, bytes, bool, type(None)})
