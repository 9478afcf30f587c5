"""The Netflix API demo: device endpoints served by a real front over one real worker per demo pool.

The backends run fast and fail only under ``seawall chaos`` (``SEAWALL_DEMO_FAST=1``), and
every demo command gets a generous timeout here, so a test sees a degraded part only
where it injected the fault.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from api.testing import free_port, get_json

REPO = Path(__file__).resolve().parents[2]
#: Every demo dependency (demo/backends.py), one pool each.
DEMO_POOLS = ("ab_tests", "artwork", "bookmarks", "continue_watching", "entitlements", "geo", "localization",
              "personalization", "playlists", "ratings", "recommendations", "search", "similar", "social",
              "subscriber", "trending", "user", "video_metadata")
DEMO_COMMANDS = ("GetUser", "GetSubscriber", "GetArtwork", "GetStrings", "GetTestCells", "GetRowOrder",
                 "GetRecommendations", "GetTrending", "GetFriendsWatching", "GetMyList", "SearchVideos", "GetSimilar",
                 "GetContinueWatching", "GetBookmarks", "GetRating", "GetVideoMetadata", "GetCountry", "CanStream")
#: Long enough that a loaded two-core machine never times a call out by accident.
TEST_TIMEOUT_S = 3.0
PLACEHOLDER_ARTWORK = "https://art.example.net/placeholder.jpg"




def _seawall(cluster, *args):
    result = subprocess.run([sys.executable, "-m", "broker.cli", "--config", str(cluster.config_path), *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _fail_every_call_of(cluster, pool):
    _seawall(cluster, "chaos", "errors", pool, "100")
    cluster.wait_until(lambda: cluster.status()["pools"][pool]["chaos"], f"chaos in pool {pool}")


@pytest.fixture
def demo(make_cluster, monkeypatch):
    """A front serving the repo's endpoints/, a broker, and one worker per demo pool."""
    monkeypatch.setenv("SEAWALL_DEMO_FAST", "1")
    port = free_port()
    cluster = make_cluster({
        "front": {"listen": f"127.0.0.1:{port}", "endpoints": str(REPO / "endpoints")},
        "pools": {pool: {"queue_size": 20} for pool in DEMO_POOLS},
        "commands": {key: {"timeout_s": TEST_TIMEOUT_S} for key in DEMO_COMMANDS},
    })
    cluster.start_broker()
    for pool in DEMO_POOLS:
        cluster.start_workers(pool, "demo.commands", slots=8)
    cluster.wait_until(lambda: all(cluster.status()["pools"].get(pool, {}).get("workers") == 1 for pool in DEMO_POOLS),
                       "a worker in every demo pool", timeout_s=40)
    cluster.start("front", "-m", "api")
    base = f"http://127.0.0.1:{port}"
    cluster.wait_until(lambda: get_json(base + "/")[0] == 200, "the front to listen")
    return cluster, base


def _assert_title(title, *fields):
    assert set(title) == set(fields), title
    assert isinstance(title["id"], int) and isinstance(title["title"], str) and title["title"]
    assert title.get("rating") is None or 1.0 <= title["rating"] <= 5.0


def _assert_member(body, user_id):
    assert body["user"]["id"] == user_id and isinstance(body["user"]["name"], str)


def test_each_device_home_is_composed_and_shaped_for_its_device(demo):
    _, base = demo

    status, ps3 = get_json(base + "/ps3/home?user=7")
    assert status == 200, ps3
    assert set(ps3) == {"device", "user", "plan", "layout", "rows", "degraded"} and ps3["degraded"] == []
    _assert_member(ps3, 7)
    assert ps3["plan"] in ("basic", "standard", "premium") and ps3["layout"] in ("classic", "billboard")
    assert len(ps3["rows"]) >= 3 and all(set(row) == {"name", "titles"} and row["titles"] for row in ps3["rows"])
    for title in (title for row in ps3["rows"] for title in row["titles"]):
        _assert_title(title, "id", "title", "year", "rating", "boxart")
        assert title["boxart"].endswith(f"/boxart_342x192/{title['id']}.jpg") and title["rating"] is not None

    status, android = get_json(base + "/android/home?user=7")
    assert status == 200, android
    assert set(android) == {"device", "user", "labels", "trending", "my_list", "degraded"} and android["degraded"] == []
    _assert_member(android, 7)
    assert android["labels"]["play"] == "Reproducir"  # member 7 is in MX: Spanish
    assert len(android["trending"]) == 8
    for title in android["trending"]:
        _assert_title(title, "id", "title", "rating", "icon", "playable")
        assert title["icon"].endswith(f"/icon_92/{title['id']}.jpg") and isinstance(title["playable"], bool)
    for title in android["my_list"]:
        _assert_title(title, "id", "title", "rating", "icon")

    status, tv = get_json(base + "/tv/home?user=7")
    assert status == 200, tv
    assert set(tv) == {"device", "user", "hd", "continue_watching", "rows", "friends_watching", "more_like_this",
                       "degraded"} and tv["degraded"] == []
    _assert_member(tv, 7)
    large = ("id", "title", "year", "genre", "maturity", "rating", "artwork")
    assert isinstance(tv["hd"], bool) and tv["continue_watching"] and len(tv["rows"]) == 2
    for title in tv["continue_watching"]:
        _assert_title(title, *large, "runtime_min", "position_s")
        assert title["artwork"].endswith(f"/billboard_1280x720/{title['id']}.jpg")
        assert 0 < title["position_s"] < 60 * title["runtime_min"] + 5400
    assert [len(row["titles"]) for row in tv["rows"]] == [6, 6]
    assert len(tv["friends_watching"]) == 3 and all(isinstance(entry["friend"], str) for entry in tv["friends_watching"])
    assert tv["more_like_this"]["video_id"] == tv["continue_watching"][0]["id"]
    assert tv["more_like_this"]["titles"]


def test_a_bad_user_id_is_a_400_naming_it(demo):
    _, base = demo
    status, body = get_json(base + "/tv/home?user=seven")
    assert status == 400 and "seven" in body["error"]


def test_a_failing_artwork_service_swaps_in_placeholder_art_and_nothing_else(demo):
    cluster, base = demo
    _, before = get_json(base + "/ps3/home?user=7")
    _fail_every_call_of(cluster, "artwork")

    status, after = get_json(base + "/ps3/home?user=7")

    assert status == 200 and after["degraded"] == ["GetArtwork"]
    assert {title["boxart"] for row in after["rows"] for title in row["titles"]} == {PLACEHOLDER_ARTWORK}
    strip_art = lambda body: [[{**title, "boxart": None} for title in row["titles"]] for row in body["rows"]]  # noqa: E731
    assert strip_art(after) == strip_art(before)
    assert (after["user"], after["plan"], after["layout"]) == (before["user"], before["plan"], before["layout"])


def test_failing_ratings_leave_the_titles_without_stars_and_the_rest_intact(demo):
    cluster, base = demo
    _, before = get_json(base + "/android/home?user=7")
    _fail_every_call_of(cluster, "ratings")

    status, after = get_json(base + "/android/home?user=7")

    assert status == 200 and after["degraded"] == ["GetRating"]
    assert all(title["rating"] is None for title in after["trending"] + after["my_list"])
    without_stars = lambda titles: [{**title, "rating": None} for title in titles]  # noqa: E731
    assert without_stars(after["trending"]) == without_stars(before["trending"])
    assert (after["user"], after["labels"]) == (before["user"], before["labels"])


def test_failing_recommendations_serve_the_rows_this_front_last_saw_or_none(demo):
    cluster, base = demo
    _, ps3_before = get_json(base + "/ps3/home?user=7")
    _, tv_before = get_json(base + "/tv/home?user=8")
    _fail_every_call_of(cluster, "recommendations")

    status, ps3_after = get_json(base + "/ps3/home?user=7")
    assert status == 200 and ps3_after["degraded"] == ["GetRecommendations"]
    assert ps3_after["rows"] == ps3_before["rows"]  # the cache fallback, held in the front

    status, tv_after = get_json(base + "/tv/home?user=9")  # a member this front never served: no rows
    assert status == 200 and tv_after["degraded"] == ["GetRecommendations"] and tv_after["rows"] == []
    assert tv_after["continue_watching"] and tv_after["friends_watching"] and tv_after["more_like_this"]
    assert set(tv_after) == set(tv_before)
