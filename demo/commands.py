"""Commands of the Netflix API demo: one or more per simulated backend, each in its own pool.

Timeouts sit a little above each backend's p99. Every command has a fallback of one of
the four kinds the API used — *cache* (the last good value, held in the front), *stubbed*
(a static default), *empty* (``[]`` / ``{}``), *fail silent* (``None``) — so a failing
dependency costs its own part of a response and nothing else. ``GetRating`` collapses
across every front (in the broker), ``GetVideoMetadata`` within one request; ``GetUser``
and ``GetStrings`` are answered once per request from the request cache.
"""

from __future__ import annotations

from typing import Any

from api import BadRequest, Command
from demo import backends
from demo.fallbacks import FallsBackToLastGood

#: Placeholder artwork when the artwork service is down (stubbed fallback).
PLACEHOLDER_ARTWORK = "https://art.example.net/placeholder.jpg"
#: Most videos one call may ask about.
MAX_VIDEOS_PER_CALL = 100


def _check_user(user_id: int) -> None:
    if not isinstance(user_id, int) or user_id < 0:
        raise BadRequest(f"user_id must be an integer >= 0, got {user_id!r}")


def _check_videos(video_ids: list[int]) -> None:
    if len(video_ids) > MAX_VIDEOS_PER_CALL:
        raise BadRequest(f"at most {MAX_VIDEOS_PER_CALL} videos per call, got {len(video_ids)}")


# -- stubbed fallbacks --------------------------------------------------------------------

class GetUser(Command):
    """The member's profile; answered once per request. Stubbed: an anonymous member."""

    dependency = "user"
    timeout_s = 0.1

    user_id: int

    def run(self) -> dict:
        _check_user(self.user_id)
        backends.call("user")
        return backends.user(self.user_id)

    def fallback(self) -> dict:
        return {"id": self.user_id, "name": "Member", "country": "US", "language": "en", "maturity": "teen"}

    def cache_key(self) -> int:
        return self.user_id


class GetSubscriber(Command):
    """The member's plan. Stubbed: the most restrictive plan, so nothing is over-promised."""

    dependency = "subscriber"
    timeout_s = 0.12

    user_id: int

    def run(self) -> dict:
        backends.call("subscriber")
        return backends.subscriber(self.user_id)

    def fallback(self) -> dict:
        return {"plan": "basic", "max_streams": 1, "hd": False}


class GetArtwork(Command):
    """Artwork URLs by video id, one call for a whole page. Stubbed: the placeholder image."""

    dependency = "artwork"
    timeout_s = 0.1

    video_ids: list
    size: str

    def run(self) -> dict[int, str]:
        _check_videos(self.video_ids)
        backends.call("artwork")
        return {video_id: backends.artwork_url(video_id, self.size) for video_id in self.video_ids}

    def fallback(self) -> dict[int, str]:
        return {video_id: PLACEHOLDER_ARTWORK for video_id in self.video_ids}


class GetStrings(Command):
    """UI strings in a language; once per request. Stubbed: English."""

    dependency = "localization"
    timeout_s = 0.05

    language: str

    def run(self) -> dict[str, str]:
        backends.call("localization")
        return backends.strings(self.language)

    def fallback(self) -> dict[str, str]:
        return backends.strings("en")

    def cache_key(self) -> str:
        return self.language


class GetTestCells(Command):
    """The member's A/B test cells. Stubbed: the control cells."""

    dependency = "ab_tests"
    timeout_s = 0.06

    user_id: int

    def run(self) -> dict[str, str]:
        backends.call("ab_tests")
        return backends.ab_cells(self.user_id)

    def fallback(self) -> dict[str, str]:
        return {"row_layout": "classic", "artwork_test": "A"}


class GetRowOrder(Command):
    """The personalized order of the home page's rows. Stubbed: the default order."""

    dependency = "personalization"
    timeout_s = 0.15

    user_id: int

    def run(self) -> list[str]:
        backends.call("personalization")
        return backends.row_order(self.user_id)

    def fallback(self) -> list[str]:
        return ["continue_watching", "recommendations", "my_list", "trending"]


# -- cache fallbacks ----------------------------------------------------------------------

class GetRecommendations(FallsBackToLastGood):
    """Rows of recommended video ids. Cache: the rows this front last served the member, else none."""

    dependency = "recommendations"
    timeout_s = 0.3

    user_id: int
    row_count: int = 3
    row_length: int = 5

    def run(self) -> list[dict]:
        _check_user(self.user_id)
        if not 0 < self.row_count * self.row_length <= MAX_VIDEOS_PER_CALL:
            raise BadRequest(f"row_count x row_length must be 1..{MAX_VIDEOS_PER_CALL}")
        backends.call("recommendations")
        return backends.recommendation_rows(self.user_id, self.row_count, self.row_length)

    def when_never_good(self) -> list:
        return []


class GetTrending(FallsBackToLastGood):
    """What is trending in a country. Cache: the list this front last saw, else none."""

    dependency = "trending"
    timeout_s = 0.12

    country: str
    limit: int = 10

    def run(self) -> list[int]:
        _check_videos([0] * self.limit)
        backends.call("trending")
        return backends.trending(self.country, self.limit)

    def when_never_good(self) -> list:
        return []


# -- empty fallbacks ----------------------------------------------------------------------

class GetFriendsWatching(Command):
    """What the member's friends watch. Empty: no social row."""

    dependency = "social"
    timeout_s = 0.35

    user_id: int

    def run(self) -> list[dict]:
        backends.call("social")
        return backends.friends_watching(self.user_id)

    def fallback(self) -> list:
        return []


class GetMyList(Command):
    """Video ids on the member's list. Empty: an empty list."""

    dependency = "playlists"
    timeout_s = 0.12

    user_id: int

    def run(self) -> list[int]:
        backends.call("playlists")
        return backends.my_list(self.user_id)

    def fallback(self) -> list:
        return []


class SearchVideos(Command):
    """Video ids matching a query. Empty: no results."""

    dependency = "search"
    timeout_s = 0.25

    query: str
    limit: int = 10

    def run(self) -> list[int]:
        if not self.query.strip():
            raise BadRequest("the search query is empty")
        _check_videos([0] * self.limit)
        backends.call("search")
        return backends.search(self.query, self.limit)

    def fallback(self) -> list:
        return []


class GetSimilar(Command):
    """Videos like one video. Empty: no "more like this" row."""

    dependency = "similar"
    timeout_s = 0.18

    video_id: int
    limit: int = 6

    def run(self) -> list[int]:
        _check_videos([0] * self.limit)
        backends.call("similar")
        return backends.similar(self.video_id, self.limit)

    def fallback(self) -> list:
        return []


class GetContinueWatching(Command):
    """Videos the member has started; once per request. Empty: no continue-watching row."""

    dependency = "continue_watching"
    timeout_s = 0.12

    user_id: int

    def run(self) -> list[int]:
        backends.call("continue_watching")
        return backends.continue_watching(self.user_id)

    def fallback(self) -> list:
        return []

    def cache_key(self) -> int:
        return self.user_id


class GetBookmarks(Command):
    """Resume positions (seconds) by video id. Empty: every video starts from the beginning."""

    dependency = "bookmarks"
    timeout_s = 0.1

    user_id: int
    video_ids: list

    def run(self) -> dict[int, int]:
        _check_videos(self.video_ids)
        backends.call("bookmarks")
        return {video_id: backends.bookmark_s(self.user_id, video_id) for video_id in self.video_ids}

    def fallback(self) -> dict:
        return {}


# -- fail silent --------------------------------------------------------------------------

class GetRating(Command):
    """The member's predicted rating of a video, collapsed across every front. Fail silent: no stars."""

    dependency = "ratings"
    collapse = "global"
    timeout_s = 0.12

    user_id: int
    video_id: int

    @classmethod
    def run_batch(cls, calls: list[GetRating]) -> list[float]:
        backends.call("ratings")  # one round trip for the whole batch
        return [backends.predicted_rating(call.user_id, call.video_id) for call in calls]

    def fallback(self) -> None:
        return None


class GetVideoMetadata(Command):
    """A video's title, year, genre...; collapsed within one request. Fail silent: the title is left out."""

    dependency = "video_metadata"
    collapse = "request"
    timeout_s = 0.1

    video_id: int

    @classmethod
    def run_batch(cls, calls: list[GetVideoMetadata]) -> list[Any]:
        backends.call("video_metadata")
        return [backends.video(call.video_id) if 0 < call.video_id <= backends.CATALOGUE_SIZE
                else BadRequest(f"no video {call.video_id}") for call in calls]

    def fallback(self) -> None:
        return None


class GetCountry(Command):
    """The country an address is in. Fail silent: unknown (the member's own country is used)."""

    dependency = "geo"
    timeout_s = 0.04

    address: str

    def run(self) -> str:
        backends.call("geo")
        return backends.country_of_address(self.address)

    def fallback(self) -> None:
        return None


class CanStream(Command):
    """Which videos the member may play here. Fail silent: unknown, the player checks again."""

    dependency = "entitlements"
    timeout_s = 0.1

    user_id: int
    video_ids: list

    def run(self) -> dict[int, bool]:
        _check_videos(self.video_ids)
        backends.call("entitlements")
        return {video_id: backends.can_stream(self.user_id, video_id) for video_id in self.video_ids}

    def fallback(self) -> None:
        return None
