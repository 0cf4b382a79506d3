"""The explorer page: every recommender side by side, over the running service.

:func:`explorer_router` is included by :func:`recsys_lib.production.service.create_app`. It
serves the page at ``/`` (plain HTML, CSS and JavaScript shipped in
``recsys_lib/production/static/``: no CDN, no build step, works offline) and its JSON API,
answered by the artefact's :class:`~recsys_lib.production.showcase.Showcase` (the ``explorer``
folder beside the ALS arrays, written by ``build-artefact``):

- ``GET /explorer/api/provenance``: dataset, split, fit time, library version, models, sources.
- ``GET /explorer/api/users?q=&limit=``: users whose id contains q.
- ``GET /explorer/api/items?q=&limit=``: items whose title contains q (to pick liked films).
- ``GET /explorer/api/user?user_id=&k=``: history, test items, each model's top-k with reasons,
  hits and nDCG@10.
- ``POST /explorer/api/cold-user`` ``{"item_ids": [...], "k": 10}``: text and hybrid lists for
  a new user known only by what they liked.
- ``POST /explorer/api/cold-film`` ``{"title": ..., "genres": [...], "description": ...}``:
  the users a new item would be shown to.

The page and its two static files need no key; every API endpoint follows the service's key
rule (``X-API-Key`` when the service was started with a key; the page asks for it on a 401).
Bad input gets the service's 4xx answers (404 unknown id, 422 bad value).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from recsys_lib.production.serving import ArtefactError
from recsys_lib.production.showcase import EXPLORER_FOLDER, Showcase

log = logging.getLogger(__name__)

STATIC_PACKAGE = "recsys_lib.production"
#: The page's files and their media types; nothing else is served from the folder.
STATIC_FILES = {"explorer.css": "text/css; charset=utf-8",
                "explorer.js": "text/javascript; charset=utf-8"}  # fmt: skip
API = "/explorer/api"


class ColdUserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_ids: list[int | str] = Field(description="raw ids of the items the new user liked")
    k: int = Field(10, description="list length, 1..50")


class ColdFilmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(description="the new item's title")
    genres: list[str] | str = Field([], description='genres or tags, a list or "A|B"')
    description: str = Field("", description="free text about the item")
    n_users: int = Field(10, description="how many users to list, 1..100")


def static_text(name: str) -> str:
    """The text of one of the page's files shipped in ``recsys_lib/production/static``."""
    return (resources.files(STATIC_PACKAGE) / "static" / name).read_text(encoding="utf-8")


def explorer_router(
    current: Callable[[], Any],
    guarded: list[Any],
    encoder_factory: Callable[[str, str | None], Any] | None = None,
) -> APIRouter:
    """The page and its API over the artefact ``current()`` serves (a service ``Loaded``).

    ``guarded``: the service's key dependencies (applied to every API endpoint);
    ``encoder_factory``: how the text encoder for new items is made (tests pass a small one).
    The artefact's explorer part is loaded on first use and again after a reload.
    """
    router = APIRouter()
    cache: dict[str, Any] = {"key": None, "showcase": None, "error": None}
    lock = threading.Lock()

    def showcase() -> Showcase:
        loaded = current()
        key = (str(loaded.folder), loaded.sha256)
        with lock:
            if cache["key"] != key:
                try:
                    cache["showcase"] = Showcase.load(loaded.folder / EXPLORER_FOLDER,
                                                      loaded.recommender, loaded.sha256,
                                                      encoder_factory)  # fmt: skip
                    cache["error"] = None
                except ArtefactError as err:
                    cache["showcase"], cache["error"] = None, str(err)
                cache["key"] = key
            if cache["showcase"] is None:
                detail = str(cache["error"]).replace(str(loaded.folder), "<artefact>")
                raise HTTPException(404, f"no explorer for this artefact: {detail}")
            showcase: Showcase = cache["showcase"]
            return showcase

    def parse_user(raw: str, show: Showcase) -> Any:
        if show.rec.user_ids.dtype.kind in "iu":
            try:
                return int(raw.strip())
            except ValueError:
                raise HTTPException(
                    422, f"user_id must be an integer for this artefact, got {raw[:40]!r}."
                ) from None
        return raw

    warm: dict[str, Any] = {"for": None}

    def warm_up(show: Showcase) -> None:
        if warm["for"] is show:  # once per loaded artefact
            return
        warm["for"] = show

        def run() -> None:
            try:
                show.warm_up()
            except Exception as err:  # reported again, clearly, by the cold-film request
                log.warning("text encoder not loaded: %s", err)

        threading.Thread(target=run, name="explorer-encoder", daemon=True).start()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(static_text("index.html"))

    @router.get("/explorer/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(
                404, f"no static file {name[:40]!r}; the page has {sorted(STATIC_FILES)}."
            )
        return Response(static_text(name), media_type=STATIC_FILES[name],
                        headers={"Cache-Control": "no-cache"})  # fmt: skip

    @router.get(f"{API}/provenance", dependencies=guarded, tags=["explorer"])
    async def provenance() -> dict[str, Any]:
        show = await run_in_threadpool(showcase)
        warm_up(show)
        return show.provenance()

    @router.get(f"{API}/users", dependencies=guarded, tags=["explorer"])
    async def users(q: str = Query("", max_length=100), limit: int = Query(20)) -> dict[str, Any]:
        show = await run_in_threadpool(showcase)
        return {"users": show.search_users(q, limit)}

    @router.get(f"{API}/items", dependencies=guarded, tags=["explorer"])
    async def items(q: str = Query("", max_length=100), limit: int = Query(20)) -> dict[str, Any]:
        show = await run_in_threadpool(showcase)
        return {"items": show.search_items(q, limit)}

    @router.get(f"{API}/user", dependencies=guarded, tags=["explorer"])
    async def user(user_id: str = Query(..., max_length=100), k: int = Query(10)) -> dict[str, Any]:
        show = await run_in_threadpool(showcase)
        return await run_in_threadpool(show.user_view, parse_user(user_id, show), k)

    @router.post(f"{API}/cold-user", dependencies=guarded, tags=["explorer"])
    async def cold_user(body: ColdUserRequest) -> dict[str, Any]:
        show = await run_in_threadpool(showcase)
        return await run_in_threadpool(show.cold_user, body.item_ids, body.k)

    @router.post(f"{API}/cold-film", dependencies=guarded, tags=["explorer"])
    async def cold_film(body: ColdFilmRequest) -> dict[str, Any]:
        show = await run_in_threadpool(showcase)
        try:  # the first call may load the encoder: seconds, off the event loop
            return await run_in_threadpool(show.cold_film, body.title, body.genres,
                                           body.description, body.n_users)  # fmt: skip
        except ArtefactError as err:
            raise HTTPException(409, str(err)) from None

    return router
