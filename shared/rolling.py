"""Rolling windows: event counts over the last few seconds, latency percentiles, per key.

Every structure takes a ``clock`` (default ``time.monotonic``) so tests never sleep,
does constant work per event (running totals, no scans on the hot path), and holds
bounded memory whatever the traffic: a fixed ring of buckets, a fixed set of
log-scaled latency bins, and at most ``max_keys`` keys, idle ones dropped.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import OrderedDict
from itertools import accumulate
from typing import Callable, Generic, Hashable, Iterator, Sequence, TypeVar

Clock = Callable[[], float]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Latency bins grow by this factor: percentiles are exact to within 5 %.
LATENCY_BIN_GROWTH = 1.05
#: Smallest latency told apart from zero.
LATENCY_FLOOR_MS = 0.01
#: Largest latency binned; anything slower lands in the last bin.
LATENCY_CEILING_MS = 3_600_000.0
_LOG_GROWTH = math.log(LATENCY_BIN_GROWTH)
_HALF_BIN_GROWTH = math.sqrt(LATENCY_BIN_GROWTH)
LATENCY_BINS = int(math.log(LATENCY_CEILING_MS / LATENCY_FLOOR_MS) / _LOG_GROWTH) + 2


class _Ring:
    """The bucket arithmetic both windows share: which bucket is current, which expired."""

    def __init__(self, window_s: float, buckets: int, clock: Clock) -> None:
        if window_s <= 0 or buckets < 1:
            raise ValueError(f"a window needs window_s > 0 and buckets >= 1, got {window_s}, {buckets}")
        self.window_s = window_s
        self.buckets = buckets
        self.bucket_s = window_s / buckets
        self.clock = clock
        self.current = 0
        self.current_start_s = clock()

    def advance(self) -> Iterator[int]:
        """Move to the bucket holding now; yield each bucket index that must be cleared."""
        elapsed_s = self.clock() - self.current_start_s
        if elapsed_s < self.bucket_s:
            return
        steps = int(elapsed_s / self.bucket_s)
        for _ in range(min(steps, self.buckets)):
            self.current = (self.current + 1) % self.buckets
            yield self.current
        self.current_start_s += steps * self.bucket_s


class RollingCounts(Generic[K]):
    """Counts of a fixed set of kinds over the last ``window_s``, in ``buckets`` buckets."""

    def __init__(self, kinds: Sequence[K], window_s: float = 10.0, buckets: int = 10,
                 clock: Clock = time.monotonic) -> None:
        self._index = {kind: i for i, kind in enumerate(kinds)}
        self._ring = _Ring(window_s, buckets, clock)
        self._buckets = [[0] * len(kinds) for _ in range(buckets)]
        self._totals = [0] * len(kinds)
        self._total = 0

    def _advance(self) -> None:
        ring = self._ring
        if ring.clock() - ring.current_start_s < ring.bucket_s:
            return  # still in the current bucket: nothing expires
        for cleared in ring.advance():
            bucket = self._buckets[cleared]
            totals = self._totals
            for i, count in enumerate(bucket):
                if count:
                    totals[i] -= count
                    self._total -= count
                    bucket[i] = 0

    def add(self, kind: K, count: int = 1) -> None:
        self._advance()
        i = self._index[kind]
        self._buckets[self._ring.current][i] += count
        self._totals[i] += count
        self._total += count

    def total(self) -> int:
        """All kinds together."""
        self._advance()
        return self._total

    def count(self, kind: K) -> int:
        self._advance()
        return self._totals[self._index[kind]]

    def totals(self) -> dict[K, int]:
        """Every kind with a non-zero count in the window."""
        self._advance()
        return {kind: self._totals[i] for kind, i in self._index.items() if self._totals[i]}

    def reset(self) -> None:
        for bucket in self._buckets:
            bucket[:] = [0] * len(bucket)
        self._totals[:] = [0] * len(self._totals)
        self._total = 0


def latency_bin(latency_ms: float, _log: Callable[[float], float] = math.log, _floor_ms: float = LATENCY_FLOOR_MS,
                _log_growth: float = _LOG_GROWTH, _last: int = LATENCY_BINS - 1) -> int:
    """The bin of a latency; constants bound as defaults since this runs on every call."""
    if latency_ms <= _floor_ms:
        return 0
    index = int(_log(latency_ms / _floor_ms) / _log_growth) + 1
    return index if index < _last else _last


def bin_upper_ms(index: int) -> float:
    """The largest latency that falls in bin ``index``."""
    return LATENCY_FLOOR_MS * LATENCY_BIN_GROWTH ** index


def bin_middle_ms(index: int) -> float:
    """The geometric middle of bin ``index``: within 2.5 % of any latency in it (the upper
    edge read up to 5 % high: a 201 ms call showed as 210 against a 200 ms timeout)."""
    return bin_upper_ms(index) / _HALF_BIN_GROWTH


class RollingPercentiles:
    """Latency percentiles over the last ``window_s`` (Hystrix: 60 s in 6 buckets)."""

    def __init__(self, window_s: float = 60.0, buckets: int = 6, clock: Clock = time.monotonic) -> None:
        self._ring = _Ring(window_s, buckets, clock)
        #: each bucket's bins, made when the bucket gets its first value: a command key
        #: seen once (callers choose keys) should not cost every bucket's array
        self._bins: list[list[int] | None] = [None] * buckets
        #: every bucket's bins added up, kept as values come and go (percentiles read one array)
        self._merged = [0] * LATENCY_BINS
        self._sums_ms = [0.0] * buckets
        self._counts = [0] * buckets
        #: each bucket's least and greatest value: the percentiles read from the bins are
        #: kept within them, so p0 and p100 are exact, and a batch of exactly 100 reads 100
        self._min_ms = [math.inf] * buckets
        self._max_ms = [0.0] * buckets
        #: bumped whenever the bins change; the last percentiles read are kept until then
        #: (the broker reads every command's twice a second, most of them unchanged)
        self._changes = 0
        self._read: tuple[int, tuple[float, ...], dict[float, float]] | None = None

    def _advance(self) -> None:
        ring = self._ring
        if ring.clock() - ring.current_start_s < ring.bucket_s:
            return  # still in the current bucket: nothing expires
        for cleared in ring.advance():
            if self._counts[cleared]:
                self._changes += 1
                merged = self._merged
                # A bucket with a count has its bins (add() makes them): not None here.
                for index, count in enumerate(self._bins[cleared]):  # type: ignore[arg-type]
                    if count:
                        merged[index] -= count
                self._bins[cleared] = None
                self._sums_ms[cleared] = 0.0
                self._counts[cleared] = 0
                self._min_ms[cleared] = math.inf
                self._max_ms[cleared] = 0.0

    def add(self, latency_ms: float) -> None:
        self._advance()
        current = self._ring.current
        index = latency_bin(latency_ms)
        bins = self._bins[current]
        if bins is None:
            bins = self._bins[current] = [0] * LATENCY_BINS
        bins[index] += 1
        self._merged[index] += 1
        self._sums_ms[current] += latency_ms
        self._counts[current] += 1
        if latency_ms < self._min_ms[current]:
            self._min_ms[current] = latency_ms
        if latency_ms > self._max_ms[current]:
            self._max_ms[current] = latency_ms
        self._changes += 1

    @property
    def count(self) -> int:
        self._advance()
        return sum(self._counts)

    def mean_ms(self) -> float:
        count = self.count
        return sum(self._sums_ms) / count if count else 0.0

    def percentiles(self, points: Sequence[float]) -> dict[float, float]:
        """Latency (ms) at each percentile in ``points`` (0-100); zeros with no data."""
        self._advance()
        total = sum(self._counts)
        if not total:
            return {point: 0.0 for point in points}
        points = tuple(points)
        read = self._read
        if read is not None and read[0] == self._changes and read[1] == points:
            return dict(read[2])
        # Counts up to each bin, summed in C, then a binary search per point: a Python loop
        # over the bins cost the broker ~180 ms of its loop per snapshot of 1,000 commands.
        seen_up_to = list(accumulate(self._merged))
        least_ms, greatest_ms = min(self._min_ms), max(self._max_ms)
        result = {}
        for point in points:
            rank = max(1, math.ceil(total * point / 100))  # nearest rank, as Hystrix's
            if rank == 1:
                result[point] = least_ms
            elif rank >= total:
                result[point] = greatest_ms
            else:
                result[point] = min(max(bin_middle_ms(bisect_left(seen_up_to, rank)), least_ms), greatest_ms)
        self._read = (self._changes, points, result)
        return dict(result)


class RollingMax:
    """The largest value seen over the last ``window_s`` (Hystrix's rolling max concurrency)."""

    def __init__(self, window_s: float = 10.0, buckets: int = 10, clock: Clock = time.monotonic) -> None:
        self._ring = _Ring(window_s, buckets, clock)
        self._maxima = [0.0] * buckets

    def add(self, value: float) -> None:
        ring = self._ring
        if ring.clock() - ring.current_start_s >= ring.bucket_s:  # else nothing expires: no generator made
            for cleared in ring.advance():
                self._maxima[cleared] = 0.0
        current = ring.current
        if value > self._maxima[current]:
            self._maxima[current] = value

    def max(self) -> float:
        for cleared in self._ring.advance():
            self._maxima[cleared] = 0.0
        return max(self._maxima)


class KeyedStore(Generic[K, V]):
    """Values per key, at most ``max_keys``; keys unused for ``idle_s`` are dropped.

    Keys come from callers (command names), so their number must not grow without bound.
    A value ``pinned`` says must stay (an open breaker) is passed over when room is made
    for a new key and when idle keys are dropped.
    """

    def __init__(self, factory: Callable[[K], V], max_keys: int = 10_000, idle_s: float = 120.0,
                 clock: Clock = time.monotonic, pinned: Callable[[V], bool] = lambda value: False) -> None:
        self._factory = factory
        self._max_keys = max_keys
        self._idle_s = idle_s
        self._clock = clock
        self._pinned = pinned
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K) -> V:
        """The value for ``key``, made on first use; marks the key as used now."""
        now_s = self._clock()
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._max_keys:
                self._make_room()
            value = self._factory(key)
        else:
            value = entry[0]
            self._entries.move_to_end(key)
        self._entries[key] = (value, now_s)
        return value

    def peek(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return entry[0] if entry else None

    def items(self) -> list[tuple[K, V]]:
        return [(key, value) for key, (value, _) in self._entries.items()]

    def _make_room(self) -> None:
        """Forget the least recently used key that is not pinned; if every key is, the
        least recently used all the same (the bound holds). A pinned key passed over moves
        to the back, so a flood of new keys does not scan it again."""
        entries = self._entries
        for _ in range(len(entries)):
            key, (value, _) = next(iter(entries.items()))
            if not self._pinned(value):
                del entries[key]
                return
            entries.move_to_end(key)
        entries.popitem(last=False)

    def drop_idle(self) -> list[K]:
        """Forget keys idle for ``idle_s`` (unless pinned); the keys dropped."""
        cutoff_s = self._clock() - self._idle_s
        dropped = []
        for key, (value, used_s) in list(self._entries.items()):
            if used_s >= cutoff_s:
                # Ordered by last use, so the rest are newer; but for a pinned key passed over
                # by _make_room, which waits for a later pass or for room to be made again.
                break
            if not self._pinned(value):
                del self._entries[key]
                dropped.append(key)
        return dropped
