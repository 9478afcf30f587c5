"""Android home, ``/android/home?user=N``: a compact list — what is trending where the phone is, and My List.

User, UI strings in the member's language, the phone's country, trending there (with
whether each title may be played), and My List, all composed at once; small icons,
no rows. ``/android/search?q=TEXT&user=N`` answers a search in the same compact form.
"""

from __future__ import annotations

from api import compose
from demo import views
from demo.commands import CanStream, GetCountry, GetMyList, GetStrings, GetTrending, GetUser, SearchVideos
from demo.backends import strings as english_strings

ICON = "icon_92"
TRENDING_COUNT = 8


def _compact(title: dict) -> dict:
    return views.pick(title, "id", "title", "rating", icon="artwork")


def _playable(title: dict, allowed: dict | None) -> dict:
    """The compact title, marked playable or not; None when entitlements could not say."""
    return {**_compact(title), "playable": None if allowed is None else bool(allowed.get(title["id"]))}


def _trending(user_id: int, country: compose.Observable) -> compose.Observable:
    """Trending titles in ``country``, each marked playable or not (None: unknown)."""

    def expand(country_code: str) -> compose.Observable:
        def with_entitlements(ids: list[int]) -> compose.Observable:
            playable = views.section(CanStream(user_id=user_id, video_ids=ids).observe(), None)
            return compose.zip(views.titles(user_id, compose.just(ids), ICON), playable,
                               combine=lambda titles, allowed: [_playable(title, allowed) for title in titles])

        ids = GetTrending(country=country_code, limit=TRENDING_COUNT).observe()
        return compose.flat_map(ids, with_entitlements)

    return views.section(compose.flat_map(country, expand), [])


def home(request):
    user_id = views.user_id_of(request)
    if user_id is None:
        return views.bad_user(request)
    address = request.headers.get("x-forwarded-for", "127.0.0.1").split(",")[0].strip()
    user = views.section(GetUser(user_id=user_id).observe(), {"id": user_id, "name": "Member", "country": "US"})
    labels = views.section(compose.flat_map(GetUser(user_id=user_id).observe(),
                                            lambda member: GetStrings(language=member["language"]).observe()),
                           english_strings("en"))
    located = views.section(GetCountry(address=address).observe(), None)
    country = compose.zip(located, views.section(GetUser(user_id=user_id).observe(), {"country": "US"}),
                          combine=lambda where, member: where or member["country"])
    trending = _trending(user_id, country)
    my_list = views.titles(user_id, GetMyList(user_id=user_id).observe(), ICON)

    def shape(user: dict, labels: dict, trending: list, my_list: list) -> dict:
        return {
            "device": "android",
            "user": {"id": user["id"], "name": user["name"]},
            "labels": labels,
            "trending": trending,
            "my_list": [_compact(title) for title in my_list],
            "degraded": views.degraded(),
        }

    return compose.zip(user, labels, trending, my_list, combine=shape)


def search(request):
    user_id = views.user_id_of(request)
    if user_id is None:
        return views.bad_user(request)
    query = request.query.get("q", "").strip()
    if not query:
        return 400, {"error": "search needs ?q=TEXT"}
    results = views.titles(user_id, SearchVideos(query=query[:100]).observe(), ICON)
    return compose.map(results, lambda titles: {"device": "android", "query": query,
                                                "results": [_compact(title) for title in titles],
                                                "degraded": views.degraded()})


ROUTES = {"home": home, "search": search}
