"""The gallery's API: paging while images arrive, filters and search, stars, boards,
bulk actions, deletion (files too), ownership (404), sessions."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from extensions import db
from models import Image
from tests.helpers import image_bytes
from tests.integration.helpers import post_upload, sign_in


def upload(user, colour=(200, 30, 30), size=(64, 48)) -> dict:
    response = post_upload(user, image_bytes(size, colour), "x.png")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def uploads(user, n: int) -> list[dict]:
    """n images, oldest first."""
    return [upload(user, (20 * i % 256, 90, 200)) for i in range(n)]


def ids(items) -> list[str]:
    return [item["id"] for item in items]


def listing(user, **params) -> dict:
    response = user.get("/api/v1/images", query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def patch(user, path, data):
    return user.client.patch(path, json=data, headers=user.headers)


def delete(user, path, **kw):
    return user.client.delete(path, headers=user.headers, **kw)


def files_of(app, image_id: str) -> list[Path]:
    with app.app_context():
        image = db.session.get(Image, image_id)
        root = Path(app.config["IMAGES_PATH"])
        return [root / image.filename, root / image.thumbnail]


def new_board(user, name: str) -> dict:
    response = user.post("/api/v1/boards", json={"name": name})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- paging -----------------------------------------------------------------------------

def test_pages_stay_correct_while_new_images_arrive(make_user):
    user = make_user()
    made = uploads(user, 7)
    newest_first = ids(reversed(made))

    first = listing(user, limit=3)
    assert ids(first["items"]) == newest_first[:3]
    assert first["total"] == 7 and first["before"]

    # New images arrive while the person scrolls: later pages do not shift.
    arrived = uploads(user, 2)
    second = listing(user, offset=3, limit=3, before=first["before"])
    third = listing(user, offset=6, limit=3, before=first["before"])
    assert ids(second["items"]) == newest_first[3:6]
    assert ids(third["items"]) == newest_first[6:]
    assert second["total"] == third["total"] == 7
    assert second["before"] == first["before"]

    # Without the snapshot the newcomers come first: that is what a fresh first page shows.
    fresh = listing(user, limit=3)
    assert ids(fresh["items"])[:2] == ids(reversed(arrived)) and fresh["total"] == 9

    # Deleting a shown image: the client lowers its offset by one, and nothing is skipped.
    assert delete(user, f"/api/v1/images/{newest_first[0]}").status_code == 204
    after = listing(user, offset=2, limit=3, before=first["before"])
    assert ids(after["items"]) == newest_first[3:6]
    assert after["total"] == 6


def test_list_filters_search_and_bad_values(make_user):
    user = make_user()
    fox = user.wait_task(user.submit(prompt="A red Fox in snow", steps=2).get_json()["id"])
    whale = user.wait_task(user.submit(prompt="a blue whale, 50% cloudy", steps=2).get_json()["id"])
    assert fox["state"] == whale["state"] == "done"
    photo = upload(user)
    fox_id, whale_id = fox["images"][0]["id"], whale["images"][0]["id"]

    assert ids(listing(user)["items"]) == [photo["id"], whale_id, fox_id]
    assert ids(listing(user, q="fox")["items"]) == [fox_id]
    assert ids(listing(user, q="FOX red")["items"]) == [fox_id]  # every word, any case
    assert ids(listing(user, q="fox whale")["items"]) == []
    assert ids(listing(user, q="50%")["items"]) == [whale_id]  # % is a character, not a wildcard
    assert ids(listing(user, q="5_%")["items"]) == []
    assert listing(user, q="fox")["items"][0]["prompt"] == "A red Fox in snow"
    assert ids(listing(user, kind="upload")["items"]) == [photo["id"]]
    assert ids(listing(user, kind="result")["items"]) == [whale_id, fox_id]

    assert patch(user, f"/api/v1/images/{whale_id}", {"starred": True}).get_json()["starred"] is True
    assert ids(listing(user, starred="true")["items"]) == [whale_id]
    assert ids(listing(user, starred="false")["items"]) == [photo["id"], fox_id]

    today = datetime.now(timezone.utc).date()
    assert listing(user, **{"from": today.isoformat()})["total"] == 3
    assert listing(user, to=(today - timedelta(days=1)).isoformat())["total"] == 0
    assert listing(user, to=today.isoformat())["total"] == 3  # "to" a date takes in that day
    assert listing(user, **{"from": (today + timedelta(days=1)).isoformat()})["total"] == 0

    for params, field in (({"kind": "video"}, "kind"), ({"starred": "maybe"}, "starred"),
                          ({"from": "yesterday"}, "from"), ({"before": "soon"}, "before"),
                          ({"q": "x" * 201}, "q"), ({"limit": 500}, "limit"),
                          ({"from": today.isoformat(), "to": (today - timedelta(days=2)).isoformat()}, "to")):
        response = user.get("/api/v1/images", query_string=params)
        assert response.status_code == 422, params
        assert response.get_json()["error"]["field"] == field


# --- stars, public, boards -------------------------------------------------------------

def test_patch_an_image_star_public_and_board(make_user):
    user = make_user()
    image = upload(user)
    board = new_board(user, "Keepers")
    url = f"/api/v1/images/{image['id']}"
    changed = patch(user, url, {"starred": True, "public": True, "board_id": board["id"]}).get_json()
    assert (changed["starred"], changed["public"], changed["board_id"]) == (True, True, board["id"])
    assert user.get(url).get_json()["board_id"] == board["id"]
    assert patch(user, url, {"board_id": None}).get_json()["board_id"] is None
    for data, field in (({"starred": "yes"}, "starred"), ({"public": 1}, "public"),
                        ({"board_id": 5}, "board_id"), ({"width": 9}, "width")):
        response = patch(user, url, data)
        assert response.status_code == 422 and response.get_json()["error"]["field"] == field
    assert patch(user, url, {"board_id": "nosuchboard"}).status_code == 404


def test_boards_create_rename_cover_counts_and_delete(app, make_user):
    user = make_user()
    landscapes = new_board(user, "  Landscapes  ")
    assert landscapes["name"] == "Landscapes"
    assert landscapes["image_count"] == 0 and landscapes["cover_image_id"] is None
    assert user.post("/api/v1/boards", json={"name": "landscapes"}).status_code == 409
    assert user.post("/api/v1/boards", json={"name": " "}).get_json()["error"]["field"] == "name"
    assert user.post("/api/v1/boards", json={"name": "x" * 81}).status_code == 422
    portraits = new_board(user, "portraits")

    a, b, c, loose = uploads(user, 4)
    moved = user.post("/api/v1/images/bulk", json={"ids": [a["id"], b["id"], c["id"]], "action": "move",
                                                    "board_id": landscapes["id"]})
    assert moved.get_json() == {"done": 3}
    listed = user.get("/api/v1/boards").get_json()
    assert [x["name"] for x in listed["items"]] == ["Landscapes", "portraits"]  # by name, any case
    assert listed["items"][0]["image_count"] == 3 and listed["items"][1]["image_count"] == 0
    assert listed["counts"] == {"all": 4, "none": 1}
    # The cover: the newest image of the board, unless one is chosen.
    assert listed["items"][0]["cover_image_id"] == c["id"]
    url = f"/api/v1/boards/{landscapes['id']}"
    assert patch(user, url, {"cover_image_id": a["id"]}).get_json()["cover_image_id"] == a["id"]
    assert patch(user, url, {"cover_image_id": loose["id"]}).status_code == 422  # not in the board
    renamed = patch(user, url, {"name": "Hills"}).get_json()
    assert renamed["name"] == "Hills" and renamed["cover_image_id"] == a["id"]
    assert patch(user, url, {"name": "Portraits"}).status_code == 409
    # The chosen cover leaves the board: the newest image stands in.
    patch(user, f"/api/v1/images/{a['id']}", {"board_id": portraits["id"]})
    assert user.get(url).get_json()["cover_image_id"] == c["id"]
    assert ids(listing(user, board=landscapes["id"])["items"]) == [c["id"], b["id"]]
    assert ids(listing(user, board="none")["items"]) == [loose["id"]]

    # Delete keeping the images: they are in no board now.
    assert delete(user, url).status_code == 204
    assert user.get(url).status_code == 404
    assert set(ids(listing(user, board="none")["items"])) == {loose["id"], b["id"], c["id"]}
    # Delete with the images: rows and files go.
    doomed = files_of(app, a["id"])
    assert all(path.exists() for path in doomed)
    assert delete(user, f"/api/v1/boards/{portraits['id']}", query_string={"delete_images": "true"}).status_code == 204
    assert user.get(f"/api/v1/images/{a['id']}").status_code == 404
    assert not any(path.exists() for path in doomed)
    assert user.get("/api/v1/boards").get_json()["counts"] == {"all": 3, "none": 3}


def test_new_results_go_into_the_chosen_board(make_user):
    user, other = make_user(), make_user()
    board = new_board(user, "Tonight")
    task = user.wait_task(user.submit(samples=2, steps=2, board_id=board["id"]).get_json()["id"])
    assert task["state"] == "done" and task["board_id"] == board["id"]
    assert [image["board_id"] for image in task["images"]] == [board["id"]] * 2
    assert listing(user, board=board["id"])["total"] == 2
    plain = user.wait_task(user.submit(steps=2).get_json()["id"])
    assert plain["images"][0]["board_id"] is None

    theirs = new_board(other, "Theirs")
    refused = user.submit(board_id=theirs["id"])
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "board_id"
    assert user.submit(board_id=7).status_code == 422
    assert listing(other, board=theirs["id"])["total"] == 0


# --- bulk -----------------------------------------------------------------------------

def test_bulk_actions_on_a_mixed_selection_touch_only_ones_own_images(app, make_user):
    me, them = make_user(), make_user()
    mine = uploads(me, 3)
    theirs = uploads(them, 2)
    selection = ids(mine) + ids(theirs) + ["doesnotexist0000000000", mine[0]["id"]]
    board = new_board(me, "Mixed")
    their_board = new_board(them, "Private")

    def bulk(**data):
        return me.post("/api/v1/images/bulk", json={"ids": selection, **data})

    assert bulk(action="star").get_json() == {"done": 3}
    assert all(me.get(f"/api/v1/images/{i}").get_json()["starred"] for i in ids(mine))
    assert not any(them.get(f"/api/v1/images/{i}").get_json()["starred"] for i in ids(theirs))

    assert bulk(action="move", board_id=board["id"]).get_json() == {"done": 3}
    assert listing(me, board=board["id"])["total"] == 3
    assert all(them.get(f"/api/v1/images/{i}").get_json()["board_id"] is None for i in ids(theirs))
    assert bulk(action="move", board_id=their_board["id"]).status_code == 404
    assert listing(them, board=their_board["id"])["total"] == 0

    assert bulk(action="unstar").get_json() == {"done": 3}
    assert bulk(action="public").get_json() == {"done": 3}
    assert not any(them.get(f"/api/v1/images/{i}").get_json()["public"] for i in ids(theirs))

    their_files = [p for i in ids(theirs) for p in files_of(app, i)]
    my_files = [p for i in ids(mine) for p in files_of(app, i)]
    assert bulk(action="delete").get_json() == {"done": 3}
    assert listing(me)["total"] == 0
    assert not any(p.exists() for p in my_files)
    assert all(p.exists() for p in their_files)
    assert listing(them)["total"] == 2 and all(
        them.get(f"/api/v1/images/{i}/full").status_code == 200 for i in ids(theirs))
    assert bulk(action="delete").get_json() == {"done": 0}

    for data, field in (({"action": "paint"}, "action"), ({"action": "move"}, "board_id"),
                        ({"action": "star", "ids": []}, "ids"), ({"action": "star", "ids": "abc"}, "ids"),
                        ({"action": "star", "ids": [1, 2]}, "ids"),
                        ({"action": "star", "ids": ["x"] * 1001}, "ids")):
        response = me.post("/api/v1/images/bulk", json={"ids": selection, **data})
        assert response.status_code == 422 and response.get_json()["error"]["field"] == field, data


# --- deletion ---------------------------------------------------------------------------

def test_deleting_an_image_removes_its_files_and_counts_stay_right(app, make_user):
    user = make_user()
    board = new_board(user, "Short lived")
    kept, doomed, other = uploads(user, 3)
    user.post("/api/v1/images/bulk", json={"ids": [kept["id"], doomed["id"]], "action": "move",
                                           "board_id": board["id"]})
    paths = files_of(app, doomed["id"])
    assert all(path.exists() for path in paths)

    assert delete(user, f"/api/v1/images/{doomed['id']}").status_code == 204
    assert not any(path.exists() for path in paths)
    for suffix in ("", "/full", "/thumbnail", "/metadata"):
        assert user.get(f"/api/v1/images/{doomed['id']}{suffix}").status_code == 404
    assert delete(user, f"/api/v1/images/{doomed['id']}").status_code == 404
    assert listing(user)["total"] == 2
    assert ids(listing(user)["items"]) == [other["id"], kept["id"]]
    boards = user.get("/api/v1/boards").get_json()
    assert boards["items"][0]["image_count"] == 1 and boards["items"][0]["cover_image_id"] == kept["id"]
    assert boards["counts"] == {"all": 2, "none": 1}
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Image).where(
            Image.id == doomed["id"])) == 0


def test_deleting_a_tasks_image_leaves_the_task_with_the_rest(make_user):
    user = make_user()
    task = user.wait_task(user.submit(samples=2, steps=2).get_json()["id"])
    first, second = task["images"]
    assert delete(user, f"/api/v1/images/{first['id']}").status_code == 204
    again = user.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert ids(again["images"]) == [second["id"]]
    assert user.get(f"/api/v1/tasks/{task['id']}/archive").status_code == 200


# --- ownership: another user's image or board is a 404 everywhere ---------------------

IMAGE_ROUTES = [
    ("GET", "/api/v1/images/{image}", None),
    ("GET", "/api/v1/images/{image}/full", None),
    ("GET", "/api/v1/images/{image}/thumbnail", None),
    ("GET", "/api/v1/images/{image}/metadata", None),
    ("PATCH", "/api/v1/images/{image}", {"starred": True}),
    ("PATCH", "/api/v1/images/{image}", {"board_id": None}),
    ("DELETE", "/api/v1/images/{image}", None),
    ("GET", "/images/{image}", None),
]
BOARD_ROUTES = [
    ("GET", "/api/v1/boards/{board}", None),
    ("PATCH", "/api/v1/boards/{board}", {"name": "Mine now"}),
    ("PATCH", "/api/v1/boards/{board}", {"cover_image_id": None}),
    ("DELETE", "/api/v1/boards/{board}", None),
    ("DELETE", "/api/v1/boards/{board}?delete_images=true", None),
    ("GET", "/api/v1/images?board={board}", None),
    ("PATCH", "/api/v1/images/{own_image}", {"board_id": "{board}"}),
    ("POST", "/api/v1/images/bulk", {"ids": ["{own_image}"], "action": "move", "board_id": "{board}"}),
]


@pytest.fixture
def owner_and_stranger(make_user):
    owner, stranger = make_user("owner"), make_user("stranger")
    image = upload(owner)
    board = new_board(owner, "Owner's")
    owner.client.patch(f"/api/v1/images/{image['id']}", json={"board_id": board["id"]}, headers=owner.headers)
    return owner, stranger, {"image": image["id"], "board": board["id"], "own_image": upload(stranger)["id"]}


def _fill(value, names):
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


@pytest.mark.parametrize("method,path,data", IMAGE_ROUTES + BOARD_ROUTES,
                         ids=[f"{m} {p} {d or ''}" for m, p, d in IMAGE_ROUTES + BOARD_ROUTES])
def test_another_users_image_or_board_is_a_404_in_every_route(client, owner_and_stranger, method, path, data):
    owner, stranger, names = owner_and_stranger
    url = path.format(**names)
    if url.startswith("/api/"):
        response = client.open(url, method=method, json=_fill(data, names), headers=stranger.headers)
    else:  # a page: the stranger signed in with a browser session
        sign_in(client, stranger.username, stranger.password)
        response = client.open(url, method=method)
    assert response.status_code == 404, response.data[:300]
    # ... and nothing changed for the owner.
    image = owner.get(f"/api/v1/images/{names['image']}").get_json()
    assert image["starred"] is False and image["board_id"] == names["board"]
    board = owner.get(f"/api/v1/boards/{names['board']}").get_json()
    assert board["name"] == "Owner's" and board["image_count"] == 1
    assert owner.get(f"/api/v1/images/{names['image']}/full").status_code == 200
    assert stranger.get(f"/api/v1/images/{names['own_image']}").get_json()["board_id"] is None


# --- pages and sessions -------------------------------------------------------------

def test_the_gallery_page_needs_a_sign_in_and_shows_an_image_page(client, make_user):
    response = client.get("/images")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    user = make_user()
    image = upload(user)
    sign_in(client, user.username, user.password)
    page = client.get("/images")
    assert page.status_code == 200 and b'id="gallery-grid"' in page.data
    detail = client.get(f"/images/{image['id']}")
    assert detail.status_code == 200 and image["id"].encode() in detail.data
    assert client.get("/images/nosuchimage").status_code == 404


def test_sessions_list_each_sign_in_with_its_tasks(app, make_user):
    user = make_user()
    first = user.wait_task(user.submit(prompt="first session", steps=2).get_json()["id"])
    browser = app.test_client()
    sign_in(browser, user.username, user.password)  # a new sign-in starts a new session
    fresh = browser.get("/api/v1/sessions").get_json()
    assert fresh["total"] == 2
    assert fresh["items"][0]["current"] is True and fresh["items"][0]["task_count"] == 0
    assert fresh["items"][1]["id"] == first["session_id"] and fresh["items"][1]["task_count"] == 1
    assert fresh["items"][1]["image_count"] == 1
    assert fresh["items"][1]["latest_prompt"] == "first session"

    second = user.wait_task(user.submit(prompt="second session", steps=2).get_json()["id"])
    assert second["session_id"] != first["session_id"]
    sessions = user.get("/api/v1/sessions").get_json()
    assert sessions["total"] == 2
    assert [s["id"] for s in sessions["items"]] == [second["session_id"], first["session_id"]]
    assert [s["current"] for s in sessions["items"]] == [True, False]
    assert sessions["items"][0]["first_at"] <= sessions["items"][0]["last_at"]
    paged = user.get("/api/v1/sessions", query_string={"offset": 1, "limit": 1}).get_json()
    assert [s["id"] for s in paged["items"]] == [first["session_id"]]
    old = user.get("/api/v1/tasks", query_string={"session": first["session_id"]}).get_json()
    assert ids(old["items"]) == [first["id"]]
