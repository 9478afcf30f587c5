"""Parts of a home page that the device endpoints share, each an Observable that cannot fail.

A part whose calls fail still emits — its commands' fallbacks, or the part's own default
through :func:`section` — so a device endpoint can ``compose.zip`` its parts into one
response that a failing dependency degrades only where that dependency shows.
"""

from __future__ import annotations

from typing import Any, Iterable

from api import compose, current_context
from api.endpoints import EndpointRequest
from api.compose import Observable
from demo.commands import PLACEHOLDER_ARTWORK, GetArtwork, GetRating, GetVideoMetadata
from shared.events import Event

#: The member served when a request names none.
DEFAULT_USER_ID = 1
#: Longest ``?user=`` read (2**63 - 1 has 19 digits); past it, no int is made of the text.
MAX_USER_ID_DIGITS = 19


def user_id_of(request: EndpointRequest) -> int | None:
    """``?user=N``, a non-negative integer that fits a signed 64-bit field; None if it is
    not one (``str.isdigit`` alone takes "²", which ``int`` refuses)."""
    text = request.query.get("user", str(DEFAULT_USER_ID))
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_USER_ID_DIGITS:
        return None
    user_id = int(text)
    return user_id if user_id < 2 ** 63 else None


def bad_user(request: EndpointRequest) -> tuple[int, dict]:
    return 400, {"error": f"user must be a non-negative integer, got {request.query.get('user')!r}"}


def section(source: Observable, default: Any) -> Observable:
    """``source``'s value, or ``default`` if it fails (a command without a fallback, a bad request)."""
    return compose.catch(source, lambda error: default)


def degraded() -> list[str]:
    """The commands of this request that answered with their fallback, for the response to say so."""
    context = current_context()
    if context is None:
        return []
    return sorted({entry.command for entry in context.log if Event.FALLBACK_SUCCESS in entry.events})


def _as_list(*values: Any) -> list[Any]:
    return list(values)


def titles_by_id(user_id: int, video_ids: Iterable[int], artwork_size: str) -> Observable:
    """One value: ``{video_id: {id, title, year, genre, runtime_min, maturity, rating, artwork}}``.

    Metadata (collapsed within the request), ratings (collapsed in the broker) and artwork
    (one call) are fetched at once; a video without metadata is left out.
    """
    video_ids = list(dict.fromkeys(video_ids))
    if not video_ids:
        return compose.just({})
    metadata = compose.zip(*[section(GetVideoMetadata(video_id=video_id).observe(), None) for video_id in video_ids],
                           combine=_as_list)
    ratings = compose.zip(*[section(GetRating(user_id=user_id, video_id=video_id).observe(), None)
                            for video_id in video_ids], combine=_as_list)
    artwork = section(GetArtwork(video_ids=video_ids, size=artwork_size).observe(), {})

    def combine(metadata_list: list, rating_list: list, artwork_by_id: dict) -> dict[int, dict]:
        return {meta["id"]: {**meta, "rating": rating, "artwork": artwork_by_id.get(meta["id"], PLACEHOLDER_ARTWORK)}
                for meta, rating in zip(metadata_list, rating_list) if meta}

    return compose.zip(metadata, ratings, artwork, combine=combine)


def titles(user_id: int, video_ids: Observable, artwork_size: str) -> Observable:
    """One value: the titles of the video ids ``video_ids`` emits, in its order; [] if that fails."""

    def expand(ids: list[int]) -> Observable:
        return compose.map(titles_by_id(user_id, ids, artwork_size),
                           lambda by_id: [by_id[video_id] for video_id in ids if video_id in by_id])

    return section(compose.flat_map(video_ids, expand), [])


def title_rows(user_id: int, rows: Observable, artwork_size: str) -> Observable:
    """One value: ``[{name, titles}]`` for the rows of video ids ``rows`` emits; [] if that fails."""

    def expand(row_list: list[dict]) -> Observable:
        every_id = [video_id for row in row_list for video_id in row["video_ids"]]
        return compose.map(titles_by_id(user_id, every_id, artwork_size), lambda by_id: [
            {"name": row["name"], "titles": [by_id[video_id] for video_id in row["video_ids"] if video_id in by_id]}
            for row in row_list])

    return section(compose.flat_map(rows, expand), [])


def pick(title: dict, *fields: str, **renamed: str) -> dict:
    """A device's view of a title: ``fields`` as they are, ``renamed`` as new_name=old_name."""
    return {**{field: title.get(field) for field in fields},
            **{new_name: title.get(old_name) for new_name, old_name in renamed.items()}}
