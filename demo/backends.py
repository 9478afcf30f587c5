"""Simulated backends of the Netflix API demo: latency, errors and deterministic data.

Each backend has a lognormal latency (a median and a p99, in ms) and an error rate. A call
sleeps with ``time.sleep`` — cooperative in workers, which gevent patches — and the data
it answers with is generated from its arguments, so the same user or video always looks
the same. ``SEAWALL_DEMO_FAST=1`` divides latencies by ``FAST_LATENCY_DIVISOR`` and turns
the random errors off (faults then come only from ``seawall chaos``).
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass

#: Latencies are divided by this, and random errors are off, when SEAWALL_DEMO_FAST=1.
FAST_LATENCY_DIVISOR = 10.0
#: z-score of the 99th percentile of a normal distribution.
_Z_P99 = 2.326
#: No simulated call sleeps longer than this many times its p99.
MAX_LATENCY_OVER_P99 = 3.0
#: Videos in the simulated catalogue; ids run from 1 to this.
CATALOGUE_SIZE = 500

_rng = random.Random()


def _fast() -> bool:
    return os.environ.get("SEAWALL_DEMO_FAST", "") not in ("", "0")


class BackendError(ConnectionError):
    """A simulated backend failed the call (refused, reset, 503)."""


@dataclass(frozen=True)
class Backend:
    name: str
    median_ms: float
    p99_ms: float
    error_pct: float

    def latency_s(self) -> float:
        """One draw from the lognormal fixed by the median and the p99, capped."""
        sigma = math.log(self.p99_ms / self.median_ms) / _Z_P99
        latency_ms = min(_rng.lognormvariate(math.log(self.median_ms), sigma), self.p99_ms * MAX_LATENCY_OVER_P99)
        return latency_ms / 1000 / (FAST_LATENCY_DIVISOR if _fast() else 1.0)

    def call(self) -> None:
        """Spend one call's latency; fail as often as the error rate says."""
        time.sleep(self.latency_s())
        if not _fast() and _rng.uniform(0, 100) < self.error_pct:
            raise BackendError(f"{self.name} backend: 503 Service Unavailable")


BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (
    Backend("user", median_ms=8, p99_ms=40, error_pct=0.5),
    Backend("subscriber", median_ms=10, p99_ms=60, error_pct=1),
    Backend("ratings", median_ms=15, p99_ms=90, error_pct=2),
    Backend("bookmarks", median_ms=12, p99_ms=80, error_pct=2),
    Backend("video_metadata", median_ms=10, p99_ms=70, error_pct=1),
    Backend("artwork", median_ms=6, p99_ms=50, error_pct=1),
    Backend("recommendations", median_ms=40, p99_ms=250, error_pct=3),
    Backend("social", median_ms=30, p99_ms=300, error_pct=8),
    Backend("playlists", median_ms=15, p99_ms=100, error_pct=2),
    Backend("search", median_ms=35, p99_ms=200, error_pct=2),
    Backend("similar", median_ms=25, p99_ms=150, error_pct=3),
    Backend("localization", median_ms=3, p99_ms=20, error_pct=0.5),
    Backend("geo", median_ms=2, p99_ms=15, error_pct=0.5),
    Backend("ab_tests", median_ms=4, p99_ms=25, error_pct=1),
    Backend("personalization", median_ms=20, p99_ms=120, error_pct=3),
    Backend("trending", median_ms=20, p99_ms=100, error_pct=2),
    Backend("continue_watching", median_ms=15, p99_ms=90, error_pct=2),
    Backend("entitlements", median_ms=8, p99_ms=50, error_pct=1),
)}


def call(name: str) -> None:
    BACKENDS[name].call()


# -- deterministic data -------------------------------------------------------------------

_ADJECTIVES = ("Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Midnight", "Frozen", "Wild", "Lost",
               "Electric", "Distant", "Hollow", "Burning", "Iron", "Paper")
_NOUNS = ("Harbor", "Kingdom", "Signal", "Orchard", "Frontier", "Mirror", "Empire", "River", "Protocol", "Garden",
          "Station", "Tide", "Circuit", "Canyon", "Lantern", "Archive")
GENRES = ("Drama", "Comedy", "Thriller", "Documentary", "Sci-Fi", "Animation", "Crime", "Romance")
_FIRST_NAMES = ("Ann", "Bo", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena")
_COUNTRIES = ("US", "CA", "GB", "BR", "DE", "JP", "MX", "FR")
_LANGUAGES = {"US": "en", "CA": "en", "GB": "en", "BR": "pt", "DE": "de", "JP": "ja", "MX": "es", "FR": "fr"}
_ROW_NAMES = ("Top Picks", "Because You Watched", "New Releases", "Critically Acclaimed", "Watch It Again")
_PLANS = (("basic", 1, False), ("standard", 2, True), ("premium", 4, True))
_STRINGS = {
    "en": {"continue": "Continue Watching", "my_list": "My List", "trending": "Trending Now", "play": "Play"},
    "pt": {"continue": "Continuar assistindo", "my_list": "Minha lista", "trending": "Em alta", "play": "Assistir"},
    "de": {"continue": "Weiterschauen", "my_list": "Meine Liste", "trending": "Im Trend", "play": "Abspielen"},
    "ja": {"continue": "視聴中", "my_list": "マイリスト", "trending": "人気急上昇", "play": "再生"},
    "es": {"continue": "Seguir viendo", "my_list": "Mi lista", "trending": "Tendencias", "play": "Reproducir"},
    "fr": {"continue": "Reprendre", "my_list": "Ma liste", "trending": "Tendances", "play": "Lecture"},
}


def _seeded(*parts: object) -> random.Random:
    return random.Random(":".join(str(part) for part in parts))


def _video_ids(rng: random.Random, count: int) -> list[int]:
    return rng.sample(range(1, CATALOGUE_SIZE + 1), count)


def user(user_id: int) -> dict:
    rng = _seeded("user", user_id)
    country = rng.choice(_COUNTRIES)
    return {"id": user_id, "name": f"{rng.choice(_FIRST_NAMES)} {user_id}", "country": country,
            "language": _LANGUAGES[country], "maturity": rng.choice(("kids", "teen", "adult"))}


def subscriber(user_id: int) -> dict:
    plan, streams, hd = _seeded("plan", user_id).choice(_PLANS)
    return {"plan": plan, "max_streams": streams, "hd": hd}


def predicted_rating(user_id: int, video_id: int) -> float:
    return round(_seeded("rating", user_id, video_id).uniform(1.0, 5.0), 1)


def bookmark_s(user_id: int, video_id: int) -> int:
    return _seeded("bookmark", user_id, video_id).randrange(60, 5400, 15)


def video(video_id: int) -> dict:
    rng = _seeded("video", video_id)
    return {"id": video_id, "title": f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}",
            "year": rng.randrange(1970, 2013), "genre": rng.choice(GENRES), "runtime_min": rng.randrange(22, 180),
            "maturity": rng.choice(("G", "PG", "PG-13", "R"))}


def artwork_url(video_id: int, size: str) -> str:
    return f"https://art.example.net/{size}/{video_id}.jpg"


def recommendation_rows(user_id: int, row_count: int, row_length: int) -> list[dict]:
    rng = _seeded("recommendations", user_id)
    names = rng.sample(_ROW_NAMES, min(row_count, len(_ROW_NAMES)))
    return [{"name": name, "video_ids": _video_ids(rng, row_length)} for name in names]


def friends_watching(user_id: int) -> list[dict]:
    rng = _seeded("social", user_id)
    return [{"friend": rng.choice(_FIRST_NAMES), "video_id": video_id} for video_id in _video_ids(rng, 3)]


def my_list(user_id: int) -> list[int]:
    rng = _seeded("playlist", user_id)
    return _video_ids(rng, rng.randrange(0, 8))


def search(query: str, limit: int) -> list[int]:
    return _video_ids(_seeded("search", query.lower()), limit)


def similar(video_id: int, limit: int) -> list[int]:
    return _video_ids(_seeded("similar", video_id), limit)


def strings(language: str) -> dict[str, str]:
    return dict(_STRINGS.get(language, _STRINGS["en"]))


def country_of_address(address: str) -> str:
    return _seeded("geo", address).choice(_COUNTRIES)


def ab_cells(user_id: int) -> dict[str, str]:
    rng = _seeded("ab", user_id)
    return {"row_layout": rng.choice(("classic", "billboard")), "artwork_test": rng.choice(("A", "B", "C"))}


def row_order(user_id: int) -> list[str]:
    order = ["continue_watching", "my_list", "recommendations", "trending"]
    _seeded("personalization", user_id).shuffle(order)
    return order


def trending(country: str, limit: int) -> list[int]:
    return _video_ids(_seeded("trending", country), limit)


def continue_watching(user_id: int) -> list[int]:
    rng = _seeded("continue", user_id)
    return _video_ids(rng, rng.randrange(1, 5))


def can_stream(user_id: int, video_id: int) -> bool:
    return _seeded("entitled", user_id, video_id).random() > 0.1
