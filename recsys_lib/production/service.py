"""A saved :class:`~recsys_lib.production.serving.Recommender` behind HTTP: FastAPI app, served by uvicorn.

    python -m recsys_lib.production.service build-artefact build/artefacts/als   # fit ALS, save it
    python -m recsys_lib.production.service --artefact build/artefacts/als --port 8000     # make serve
    curl 'http://127.0.0.1:8000/recommend?user_id=196&k=5'

Endpoints (typed with pydantic; interactive OpenAPI docs at ``/docs``):

- ``GET /health``: status, catalogue sizes, the artefact's path, checksum and load count.
- ``GET /recommend?user_id=&k=``: top-k unseen items of one user.
- ``POST /recommend`` with ``{"user_ids": [...], "k": 10}``: a batch (at most ``max_batch``).
- ``GET /similar?item_id=&k=``: the k most similar items.
- ``GET /explain?user_id=&item_id=``: "because you liked ...".
- ``POST /reload`` with ``{"artefact": DIR}`` (or ``{}`` for the same folder): load and verify
  an artefact, then swap it in. Requests in flight finish on the old one; none is dropped.
- ``GET /`` and ``/explorer/api/...``: the explorer page, every model side by side
  (:mod:`recsys_lib.production.explorer`).

Bad input is answered 4xx with the library's own message: 404 for an unknown user or item id,
422 for a bad ``k``, an id of the wrong type, malformed JSON or a missing field, 413 for an
oversized batch, 409 for a tampered or missing artefact on reload (the old one keeps serving).
What the service does not understand is refused, never ignored: an unknown JSON field or query
parameter (a misspelt ``K``) is a 422. Ids are at most 256 characters, error bodies at most
500 (an input is never echoed at length) and responses name artefact folders, never server
paths.

API key: off by default. Start with ``--api-key-env NAME`` (the key is read from the
environment variable NAME, never from the command line, so it stays out of ``ps``) and every
endpoint except ``/health`` and the docs needs the header ``X-API-Key: <key>`` (401 otherwise,
also for a header that is not ASCII); the key is compared in constant time, and an empty or
non-ASCII configured key is a start-up error.
``/reload`` only accepts artefact folders beside the first one (same parent folder).
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from recsys_lib.production.serving import MANIFEST_FILE, ArtefactError, Recommender, UnknownIdError
from recsys_lib.validation import short_repr

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
DEFAULT_MAX_BATCH = 1_000
MAX_BATCH_LIMIT = 100_000  # the most max_batch may be: bounds what one request can make us parse
MAX_ID_LENGTH = 256  # characters of one raw id in a request
MAX_DETAIL = 500  # characters of an error body's detail: inputs are never echoed at length

RawId = int | str
RequestId = int | Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH)]


# ----------------------------------------------------------------------------- models
class Health(BaseModel):
    status: str = Field(description='"ok" while an artefact is loaded')
    n_users: int
    n_items: int
    artefact: str = Field(description="name of the artefact folder being served")
    sha256: str = Field(description="checksum of its arrays file, from the verified manifest")
    loads: int = Field(description="1 after start-up, +1 per successful reload")
    integrity: str = Field(description="how the artefact was verified: signature or checksum only")


class Recommendation(BaseModel):
    user_id: RawId
    items: list[RawId] = Field(description="raw item ids, best first, train items excluded")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field ("K") is an error, not ignored

    user_ids: list[RequestId] = Field(
        description="raw user ids, at most max_batch of them", max_length=MAX_BATCH_LIMIT
    )
    k: int = Field(10, description="list length, 1..catalogue size")


class BatchResponse(BaseModel):
    results: list[Recommendation]


class Similar(BaseModel):
    item_id: RawId
    items: list[RawId] = Field(description="the most similar items, the item itself excluded")


class Explanation(BaseModel):
    user_id: RawId
    item_id: RawId
    because_item_id: RawId = Field(description="the user's train item closest to item_id")
    similarity: float
    reason: str


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    artefact: str | None = Field(None, description="folder to load (default: the current one)")


class ErrorBody(BaseModel):
    detail: str


# ----------------------------------------------------------------------------- state
@dataclass(frozen=True)
class Loaded:
    """One verified artefact; replaced as a whole on reload (an atomic reference swap)."""

    recommender: Recommender
    folder: Path
    sha256: str
    loads: int


def load_artefact(folder: str | os.PathLike[str], loads: int = 1) -> Loaded:
    """Load and verify (format, version, SHA-256) a saved recommender; raises ArtefactError."""
    folder = Path(folder).resolve()
    recommender = Recommender.load(folder)  # refuses a tampered or truncated copy
    sha = json.loads((folder / MANIFEST_FILE).read_text())["sha256"]
    return Loaded(recommender, folder, sha, loads)


def _parse_id(raw: RawId, ids_kind: str, name: str) -> RawId:
    """A raw id from JSON or a query string, as the catalogue's type (int or str)."""
    if ids_kind in "iu":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        try:
            return int(str(raw).strip())
        except ValueError:
            raise HTTPException(
                422,
                f"{name} must be an integer for this artefact (its ids are integers), got "
                f"{short_repr(raw)}.",
            ) from None
    return str(raw)


def _only_query(*names: str) -> Any:
    """A dependency refusing query parameters other than ``names`` (a misspelt ``K=`` would
    otherwise be ignored and the default used)."""
    allowed = set(names)

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            takes = ", ".join(sorted(allowed)) or "no query parameters"
            raise HTTPException(
                422,
                f"unknown query parameter(s) {short_repr(unknown)}; this endpoint takes {takes}.",
            )

    return Depends(check)


def check_api_key(api_key: str | None) -> None:
    """A configured key must be non-empty printable ASCII (what an HTTP header carries
    unchanged); anything else is a start-up error, not a server that accepts an empty key."""
    if api_key is None:
        return
    if not isinstance(api_key, str) or not api_key or not all(33 <= ord(c) < 127 for c in api_key):
        raise ValueError(
            "api_key must be a non-empty string of printable ASCII characters without spaces "
            f"(it travels in the {API_KEY_HEADER} header); got "
            f"{'an empty string' if api_key == '' else 'another value'}. Generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'."
        )


def _items(values: np.ndarray) -> list[RawId]:
    return [v for v in values.tolist() if v != -1 and v != ""]


def create_app(
    artefact: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> FastAPI:
    """The FastAPI app serving the verified artefact in ``artefact`` (a saved Recommender).

    ``api_key``: when given, every endpoint but /health and the docs needs the header
    ``X-API-Key``. ``max_batch``: the most user ids one POST /recommend may carry (413 above).
    Raises :class:`~recsys_lib.production.serving.ArtefactError` when the artefact is missing or tampered.
    """
    if isinstance(max_batch, bool) or not isinstance(max_batch, int):
        raise ValueError(f"max_batch must be an integer, got {short_repr(max_batch)}.")
    if not 1 <= max_batch <= MAX_BATCH_LIMIT:
        raise ValueError(f"max_batch must be between 1 and {MAX_BATCH_LIMIT}, got {max_batch}.")
    check_api_key(api_key)
    expected_key = api_key.encode("ascii") if api_key is not None else b""
    state = {"current": load_artefact(artefact)}
    root = state["current"].folder.parent

    def public(text: str) -> str:
        """An error detail fit for a response: no server paths, at most MAX_DETAIL chars."""
        text = text.replace(str(root) + os.sep, "").replace(str(root), "<artefacts>")
        return text if len(text) <= MAX_DETAIL else f"{text[: MAX_DETAIL - 3]}..."

    app = FastAPI(
        title="recsys-lib recommendation service",
        description="Top-k recommendations, similar items and explanations from a saved "
        "recsys_lib Recommender (see recsys_lib.production.service).",
        version="1",
    )

    def check_key(x_api_key: str | None = Header(None, alias=API_KEY_HEADER)) -> None:
        if api_key is None:
            return
        # bytes, so a non-ASCII header is simply wrong (401), compared in constant time
        sent = (x_api_key or "").encode("utf-8", "surrogateescape")
        if x_api_key is None or not hmac.compare_digest(sent, expected_key):
            raise HTTPException(401, f"missing or wrong {API_KEY_HEADER} header; send the key.")

    guarded = [Depends(check_key)] if api_key is not None else []
    errors: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}, 422: {"model": ErrorBody}}

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": public(str(err.detail))}, status_code=err.status_code,
                            headers=getattr(err, "headers", None))  # fmt: skip

    @app.exception_handler(UnknownIdError)
    async def _unknown(request: Request, err: UnknownIdError) -> JSONResponse:
        return JSONResponse({"detail": public(str(err))}, status_code=404)

    @app.exception_handler(ValueError)
    async def _value(request: Request, err: ValueError) -> JSONResponse:
        return JSONResponse({"detail": public(str(err))}, status_code=422)

    @app.exception_handler(TypeError)
    async def _type(request: Request, err: TypeError) -> JSONResponse:
        return JSONResponse({"detail": public(str(err))}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for e in err.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body"))
            parts.append(f"{where or 'body'}: {e.get('msg', 'invalid')}")
        return JSONResponse({"detail": public("; ".join(parts))}, status_code=422)

    @app.get("/health", response_model=Health, dependencies=[_only_query()])
    async def health() -> Health:
        cur = state["current"]
        rec = cur.recommender
        return Health(status="ok", n_users=rec.n_users, n_items=rec.n_items,
                      artefact=cur.folder.name, sha256=cur.sha256, loads=cur.loads,
                      integrity=rec.integrity)  # fmt: skip

    @app.get("/recommend", response_model=Recommendation, responses=errors,
             dependencies=[*guarded, _only_query("user_id", "k")])  # fmt: skip
    async def recommend(
        user_id: str = Query(..., max_length=MAX_ID_LENGTH), k: int = Query(10)
    ) -> Recommendation:
        rec = state["current"].recommender
        uid = _parse_id(user_id, rec.user_ids.dtype.kind, "user_id")
        return Recommendation(user_id=uid, items=_items(rec.recommend(uid, k)))

    @app.post("/recommend", response_model=BatchResponse, dependencies=[*guarded, _only_query()],
              responses={**errors, 413: {"model": ErrorBody}})  # fmt: skip
    async def recommend_batch(body: BatchRequest) -> BatchResponse:
        if len(body.user_ids) > max_batch:
            raise HTTPException(
                413, f"batch of {len(body.user_ids)} user ids is over the limit of {max_batch}; "
                "split it into smaller requests.",
            )  # fmt: skip
        if not body.user_ids:
            raise HTTPException(422, "user_ids is empty; send at least one user id.")
        rec = state["current"].recommender
        ids = [_parse_id(u, rec.user_ids.dtype.kind, "user_ids") for u in body.user_ids]
        top = rec.recommend_many(ids, body.k)
        results = [
            Recommendation(user_id=u, items=_items(row)) for u, row in zip(ids, top, strict=True)
        ]
        return BatchResponse(results=results)

    @app.get("/similar", response_model=Similar, responses=errors,
             dependencies=[*guarded, _only_query("item_id", "k")])  # fmt: skip
    async def similar(
        item_id: str = Query(..., max_length=MAX_ID_LENGTH), k: int = Query(10)
    ) -> Similar:
        rec = state["current"].recommender
        iid = _parse_id(item_id, rec.item_ids.dtype.kind, "item_id")
        return Similar(item_id=iid, items=_items(rec.similar_items(iid, k)))

    @app.get("/explain", response_model=Explanation, responses=errors,
             dependencies=[*guarded, _only_query("user_id", "item_id")])  # fmt: skip
    async def explain(
        user_id: str = Query(..., max_length=MAX_ID_LENGTH),
        item_id: str = Query(..., max_length=MAX_ID_LENGTH),
    ) -> Explanation:
        rec = state["current"].recommender
        uid = _parse_id(user_id, rec.user_ids.dtype.kind, "user_id")
        iid = _parse_id(item_id, rec.item_ids.dtype.kind, "item_id")
        row = rec.explain(uid, [iid]).iloc[0]
        return Explanation(user_id=uid, item_id=iid, because_item_id=row["because_item_id"].item(),
                           similarity=float(row["similarity"]), reason=str(row["reason"]))  # fmt: skip

    @app.post("/reload", response_model=Health, dependencies=[*guarded, _only_query()],
              responses={403: {"model": ErrorBody}, 409: {"model": ErrorBody}})  # fmt: skip
    async def reload(body: ReloadRequest | None = None) -> Health:
        cur = state["current"]
        folder = Path(body.artefact).resolve() if body and body.artefact else cur.folder
        if folder.parent != root:
            raise HTTPException(
                403, "that folder is not beside the first artefact; reload only loads folders in "
                "the folder that holds it. Save the new artefact there.",
            )  # fmt: skip
        try:  # load and verify off the event loop: requests keep being answered meanwhile
            new = await run_in_threadpool(load_artefact, folder, cur.loads + 1)
        except (ArtefactError, OSError, ValueError, KeyError) as err:
            raise HTTPException(
                409, f"reload refused, still serving {cur.folder.name}: {public(str(err))}"
            ) from None
        state["current"] = new  # one reference assignment: atomic for every later request
        log.info("reloaded %s (sha256 %s)", new.folder, new.sha256[:12])
        return await health()

    from recsys_lib.production.explorer import explorer_router  # the page at / and its API

    app.include_router(explorer_router(lambda: state["current"], guarded))
    return app


def build_artefact(
    out: str | os.PathLike[str],
    *,
    dataset: str = "movielens-100k",
    seed: int = 42,
    explorer: bool = True,
    encoder: object | None = None,
    sequence: bool | dict[str, Any] = False,
) -> Path:
    """Fit ALS (the quick start's parameters) on a dataset's benchmark train split; save it.

    ``dataset``: "movielens-100k" or a path readable by :func:`recsys_lib.data.owndata.load_dataset`.
    The artefact carries the item titles (for explanations) and no text embeddings, so
    similar items and explanations use the ALS item factors. With ``explorer`` (default) the
    explorer page's models are saved beside it, in ``out/explorer``
    (:func:`recsys_lib.production.showcase.build_showcase`; ``encoder``: its text encoder,
    default the course's MiniLM; ``sequence``: also fit SASRec). Returns the artefact folder.
    """
    from recsys_lib.course.pipeline import DEFAULT_ALS_PARAMS
    from recsys_lib.data.owndata import load_dataset
    from recsys_lib.data.splits import benchmark_data
    from recsys_lib.models.mf import ALS

    data = load_dataset(dataset)
    split = benchmark_data(data.ratings, seed=seed)
    als = ALS(seed=seed, **DEFAULT_ALS_PARAMS).fit(split.train)
    titles = data.items.set_index("item_id")["title"]
    folder = Recommender.from_model(als, split.train, item_names=titles).save(out, overwrite=True)
    if explorer:
        from recsys_lib.production.showcase import build_showcase

        build_showcase(folder, data, split, als, seed=seed, dataset=dataset,
                       als_params=DEFAULT_ALS_PARAMS, encoder=encoder, sequence=sequence)  # fmt: skip
    return folder


def _one_thread_per_request() -> None:
    """This process answers one request at a time on its event loop; a 1-row top-k gains
    nothing from torch's thread pool but pays its wake-ups (milliseconds on a busy machine)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsys_lib.production.service",
        description="Serve a saved recsys_lib Recommender over HTTP (docs at /docs).",
    )
    parser.add_argument("--artefact", required=True, type=Path, help="folder from Recommender.save")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key-env", default=None,
                        help="name of an environment variable holding the API key (off if unset)")  # fmt: skip
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
    parser.add_argument("--log-level", default="warning")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "build-artefact":
        build = argparse.ArgumentParser(
            prog="python -m recsys_lib.production.service build-artefact"
        )
        build.add_argument("out", type=Path, help="artefact folder to (over)write")
        build.add_argument("--dataset", default="movielens-100k", help="name or path")
        build.add_argument("--seed", type=int, default=42)
        build.add_argument("--no-explorer", action="store_true", help="ALS only, no explorer page")
        build.add_argument("--sequence", action="store_true", help="explorer: also fit SASRec")
        b = build.parse_args(argv[1:])
        out = build_artefact(b.out, dataset=b.dataset, seed=b.seed, explorer=not b.no_explorer,
                             sequence=b.sequence)  # fmt: skip
        print(f"wrote {out}")
        return 0
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            print(f"error: --api-key-env {args.api_key_env} names an empty or unset variable; "
                  "export the key first.", file=sys.stderr)  # fmt: skip
            return 2
    try:
        app = create_app(args.artefact, api_key=api_key, max_batch=args.max_batch)
    except (ArtefactError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import uvicorn

    _one_thread_per_request()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
