"""PS3 home, ``/ps3/home?user=N``: rows of titles with box art, in the member's row order.

Six calls at once — user, plan, A/B cells, row order, recommendations, My List — and the
titles of both kinds of rows (metadata, ratings, artwork) as soon as their ids arrive.
A failing dependency costs only its part: stubbed plan or layout, cached or empty rows,
placeholder art, no stars.
"""

from __future__ import annotations

from api import compose
from demo import views
from demo.commands import GetMyList, GetRecommendations, GetRowOrder, GetSubscriber, GetTestCells, GetUser

BOXART = "boxart_342x192"


def _title(title: dict) -> dict:
    return views.pick(title, "id", "title", "year", "rating", boxart="artwork")


def home(request):
    user_id = views.user_id_of(request)
    if user_id is None:
        return views.bad_user(request)
    user = views.section(GetUser(user_id=user_id).observe(), {"id": user_id, "name": "Member"})
    plan = views.section(GetSubscriber(user_id=user_id).observe(), {"plan": "basic"})
    cells = views.section(GetTestCells(user_id=user_id).observe(), {"row_layout": "classic"})
    order = views.section(GetRowOrder(user_id=user_id).observe(), [])
    recommended = views.title_rows(user_id, GetRecommendations(user_id=user_id, row_count=3, row_length=5).observe(),
                                   BOXART)
    my_list = views.titles(user_id, GetMyList(user_id=user_id).observe(), BOXART)

    def shape(user: dict, plan: dict, cells: dict, order: list, recommended: list, my_list: list) -> dict:
        rows = [("recommendations", row["name"], row["titles"]) for row in recommended]
        rows.append(("my_list", "My List", my_list))
        rank = {kind: position for position, kind in enumerate(order)}
        rows.sort(key=lambda row: rank.get(row[0], len(rank)))  # stable: recommendations keep their order
        return {
            "device": "ps3",
            "user": {"id": user["id"], "name": user["name"]},
            "plan": plan["plan"],
            "layout": cells["row_layout"],
            "rows": [{"name": name, "titles": [_title(title) for title in titles]} for _, name, titles in rows if titles],
            "degraded": views.degraded(),
        }

    return compose.zip(user, plan, cells, order, recommended, my_list, combine=shape)


ROUTES = {"home": home}
