"""What brokers that left the view had counted, so the view's counters never go down.

The view's "since start" counts (each command's ``events_total``, each pool's
``completed_total`` and ``submitted_total``) are sums over the brokers in the view. A
broker that leaves it (restarted, or silent for a few seconds) took its share of the sum
with it: the counters fell, Prometheus read a counter reset, and ``rate()`` and
``increase()`` reported a burst as large as everything the other brokers had counted, an
alert's false alarm. The feed hands every broker that leaves to :class:`DepartedTotals`,
which keeps its last counts in the sum; a broker that comes back (the same ``host:pid``)
counts again from its own snapshot, so nothing is counted twice. The counters then start
from zero only when the front does, as Prometheus expects of a target.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

#: Departed brokers remembered one by one (one that comes back is taken out of the sum);
#: older ones are folded into one sum, from which a broker cannot be taken out again.
MAX_REMEMBERED = 8
#: Pool counters in the sum: the view's field names.
POOL_COUNTERS = ("completed_total", "submitted_total")

_Counts = dict[str, dict[str, int]]  # key -> counter name -> count


def _counts(snapshot: Mapping[str, Any]) -> tuple[_Counts, _Counts]:
    commands = {key: dict(command["events_total"]) for key, command in snapshot["commands"].items()}
    pools = {name: {field: pool[field] for field in POOL_COUNTERS} for name, pool in snapshot["pools"].items()}
    return commands, pools


def _add(into: _Counts, counts: _Counts, max_keys: int) -> None:
    for key, by_name in counts.items():
        target = into.get(key)
        if target is None:
            if len(into) >= max_keys:
                continue  # bounded: a key past the limit is dropped from the sum
            target = into[key] = {}
        for name, count in by_name.items():
            target[name] = target.get(name, 0) + count


class DepartedTotals:
    def __init__(self, max_keys: int, max_remembered: int = MAX_REMEMBERED) -> None:
        self._max_keys = max_keys
        self._max_remembered = max_remembered
        self._remembered: OrderedDict[str, tuple[_Counts, _Counts]] = OrderedDict()
        self._folded: tuple[_Counts, _Counts] = ({}, {})

    def left(self, broker_id: str, snapshot: Mapping[str, Any]) -> None:
        """``broker_id`` left the view; ``snapshot`` is the last one it sent."""
        self._remembered[broker_id] = _counts(snapshot)
        self._remembered.move_to_end(broker_id)
        while len(self._remembered) > self._max_remembered:
            _, (commands, pools) = self._remembered.popitem(last=False)
            _add(self._folded[0], commands, self._max_keys)
            _add(self._folded[1], pools, self._max_keys)

    def returned(self, broker_id: str) -> None:
        """``broker_id`` is heard again: its own snapshot carries its counts."""
        self._remembered.pop(broker_id, None)

    def add_to(self, view: dict[str, Any]) -> None:
        """Add the departed brokers' counts to the commands and pools of ``view`` (built
        fresh by the caller: changed in place)."""
        if not self._remembered and not self._folded[0] and not self._folded[1]:
            return
        sources = [*self._remembered.values(), self._folded]
        for key, command in view["commands"].items():
            totals = command["events_total"]
            for commands, _ in sources:
                for event, count in commands.get(key, {}).items():
                    totals[event] = totals.get(event, 0) + count
        for name, pool in view["pools"].items():
            for _, pools in sources:
                for field, count in pools.get(name, {}).items():
                    pool[field] += count
