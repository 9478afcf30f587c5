"""TV home, ``/tv/home?user=N``: large artwork, continue watching with resume points, and more.

User, plan, continue watching (with bookmarks), recommendation rows, what friends watch,
and more like the last thing started, composed at once. A failing dependency empties or
stubs its own row: no resume points without bookmarks, no social row without social.
"""

from __future__ import annotations

from api import compose
from demo import views
from demo.commands import (
    GetBookmarks,
    GetContinueWatching,
    GetFriendsWatching,
    GetRecommendations,
    GetSimilar,
    GetSubscriber,
    GetUser,
)

BILLBOARD = "billboard_1280x720"


def _large(title: dict) -> dict:
    return views.pick(title, "id", "title", "year", "genre", "maturity", "rating", artwork="artwork")


def _continue_watching(user_id: int) -> compose.Observable:
    """Started titles with where to resume (``position_s`` None when bookmarks are down)."""

    def expand(ids: list[int]) -> compose.Observable:
        positions = views.section(GetBookmarks(user_id=user_id, video_ids=ids).observe(), {})
        return compose.zip(views.titles(user_id, compose.just(ids), BILLBOARD), positions, combine=lambda titles, at: [
            {**_large(title), "runtime_min": title["runtime_min"], "position_s": at.get(title["id"])}
            for title in titles])

    return views.section(compose.flat_map(GetContinueWatching(user_id=user_id).observe(), expand), [])


def _friends_watching(user_id: int) -> compose.Observable:
    def expand(friends: list[dict]) -> compose.Observable:
        ids = [friend["video_id"] for friend in friends]
        return compose.map(views.titles_by_id(user_id, ids, BILLBOARD), lambda by_id: [
            {"friend": friend["friend"], **_large(by_id[friend["video_id"]])}
            for friend in friends if friend["video_id"] in by_id])

    return views.section(compose.flat_map(GetFriendsWatching(user_id=user_id).observe(), expand), [])


def _more_like_last_started(user_id: int) -> compose.Observable:
    """``{"video_id", "titles"}`` like the first title in continue watching; None if there is none."""

    def expand(started: list[int]) -> compose.Observable:
        if not started:
            return compose.just(None)
        similar = views.titles(user_id, GetSimilar(video_id=started[0]).observe(), BILLBOARD)
        return compose.map(similar, lambda titles: {"video_id": started[0], "titles": [_large(t) for t in titles]}
                           if titles else None)

    return views.section(compose.flat_map(GetContinueWatching(user_id=user_id).observe(), expand), None)


def home(request):
    user_id = views.user_id_of(request)
    if user_id is None:
        return views.bad_user(request)
    user = views.section(GetUser(user_id=user_id).observe(), {"id": user_id, "name": "Member"})
    plan = views.section(GetSubscriber(user_id=user_id).observe(), {"hd": False})
    started = _continue_watching(user_id)
    rows = views.title_rows(user_id, GetRecommendations(user_id=user_id, row_count=2, row_length=6).observe(),
                            BILLBOARD)
    friends = _friends_watching(user_id)
    more_like = _more_like_last_started(user_id)

    def shape(user: dict, plan: dict, started: list, rows: list, friends: list, more_like: dict | None) -> dict:
        return {
            "device": "tv",
            "user": {"id": user["id"], "name": user["name"]},
            "hd": plan["hd"],
            "continue_watching": started,
            "rows": [{"name": row["name"], "titles": [_large(title) for title in row["titles"]]}
                     for row in rows if row["titles"]],
            "friends_watching": friends,
            "more_like_this": more_like,
            "degraded": views.degraded(),
        }

    return compose.zip(user, plan, started, rows, friends, more_like, combine=shape)


ROUTES = {"home": home}
