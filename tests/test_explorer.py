"""The explorer artefact (recsys_lib.production.showcase) and its endpoints
(recsys_lib.production.explorer) through FastAPI's TestClient, on generated own data.

A small hashing text encoder stands in for MiniLM so the module runs in seconds; the browser
test (tests/test_explorer_browser.py) runs the real encoder end to end."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from recsys_lib.data.owndata import load_dataset, write_example_dataset  # noqa: E402
from recsys_lib.data.splits import benchmark_data  # noqa: E402
from recsys_lib.evaluation.metrics import ndcg_at_k  # noqa: E402
from recsys_lib.models.base import FactorModel  # noqa: E402
from recsys_lib.models.hybrid import blend  # noqa: E402
from recsys_lib.models.mf import EASE  # noqa: E402
from recsys_lib.production import showcase as showcase_module  # noqa: E402
from recsys_lib.production.service import build_artefact, create_app  # noqa: E402
from recsys_lib.production.serving import ArtefactError, Recommender  # noqa: E402
from recsys_lib.production.showcase import Showcase  # noqa: E402
from recsys_lib.retrieval.similarity import user_profiles  # noqa: E402

# one xdist worker builds the module's artefacts once (make test runs --dist loadgroup)
pytestmark = pytest.mark.xdist_group("explorer")
SEQUENCE = {"dim": 16, "layers": 1, "heads": 1, "epochs": 2, "max_length": 8}  # a tiny SASRec


class HashingEncoder:
    """Bag of words hashed into 64 dimensions: texts sharing words get close vectors."""

    model_name = "hashing-test-encoder"
    weights_hash = None
    dim = 64

    def encode(self, texts, show_progress=False):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(".", " ").replace(",", " ").split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def hashing_factory(model, sha256):
    return HashingEncoder()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("explorer")
    data_dir = write_example_dataset(root / "shop", n_users=60, n_items=80, seed=0)
    folder = build_artefact(root / "art" / "v1", dataset=str(data_dir), encoder=HashingEncoder(),
                            sequence=SEQUENCE)  # fmt: skip
    build_artefact(root / "art" / "plain", dataset=str(data_dir), explorer=False)
    build_artefact(root / "art" / "noseq", dataset=str(data_dir), encoder=HashingEncoder())
    data = load_dataset(str(data_dir))
    return folder, data, benchmark_data(data.ratings, seed=42)


@pytest.fixture(scope="module")
def show(built):
    folder = built[0]
    sha = json.loads((folder / "manifest.json").read_text())["sha256"]
    return Showcase.load(folder / "explorer", Recommender.load(folder), sha, hashing_factory)


@pytest.fixture(scope="module")
def client(built):
    patch = pytest.MonkeyPatch()
    patch.setattr(showcase_module, "_default_encoder", hashing_factory)
    with TestClient(create_app(built[0])) as c:
        yield c
    patch.undo()


def test_artefact_is_verified_and_tied_to_its_als(built, tmp_path):
    import shutil

    folder = built[0]
    manifest = json.loads((folder / "explorer" / "manifest.json").read_text())
    als_sha = json.loads((folder / "manifest.json").read_text())["sha256"]
    assert manifest["als_sha256"] == als_sha and len(manifest["sha256"]) == 64
    prov = manifest["provenance"]
    assert prov["dataset"].endswith("shop") and prov["dataset_key"].startswith("own-")
    assert "seed 42" in prov["split"] and prov["fitted_at"] and prov["library_version"]
    assert "validation" in manifest["models"]["hybrid"]["params_source"]  # no choice recorded
    rec = Recommender.load(folder)
    with pytest.raises(ArtefactError, match="another ALS artefact"):
        Showcase.load(folder / "explorer", rec, "0" * 64)
    copy = tmp_path / "copy"
    shutil.copytree(folder / "explorer", copy)
    raw = bytearray((copy / "arrays.npz").read_bytes())
    raw[-20] ^= 0xFF
    (copy / "arrays.npz").write_bytes(bytes(raw))
    with pytest.raises(ArtefactError, match="checksum"):
        Showcase.load(copy, rec)
    with pytest.raises(ArtefactError, match="no explorer artefact"):
        Showcase.load(tmp_path / "nowhere", rec)


def test_every_list_is_the_library_models_ranking(show, built):
    _, _, split = built
    train = split.train
    user = int(train.catalogue.user_ids[3])
    row = 3
    view = show.user_view(user, k=10)
    lists = {entry["model"]: [e["item_id"] for e in entry["items"]] for entry in view["lists"]}
    assert list(lists) == ["popularity", "als", "ease", "text", "hybrid", "sequence"]
    ids = train.catalogue.item_ids
    assert lists["als"] == show.rec.recommend(user, 10).tolist()  # the served list
    reg = show.manifest["models"]["ease"]["params"]["regularization"]
    assert lists["ease"] == ids[EASE(reg).fit(train).recommend([row], 10)[0]].tolist()
    text = FactorModel(user_profiles(train, show.item_text), show.item_text).fit(train)
    assert lists["text"] == ids[text.recommend([row], 10)[0]].tolist()
    als = FactorModel(show.rec.user_factors, show.rec.item_factors).fit(train)
    hybrid = blend(als, text, show.weight)
    assert lists["hybrid"] == ids[hybrid.recommend([row], 10)[0]].tolist()
    seen = set(show.rec.history(user).tolist())
    assert not seen & {i for items in lists.values() for i in items}  # history excluded


def test_reasons_are_the_models_own_score_terms(show):
    user = int(show.rec.user_ids[5])
    history = set(show.rec.history(user).tolist())
    view = show.user_view(user, k=10, n_reasons=3)
    for entry in view["lists"]:
        for item in entry["items"]:
            if entry["model"] == "popularity":
                assert item["because"] == [] and "interacted with it in train" in item["reason"]
                continue
            assert {b["item_id"] for b in item["because"]} <= history
            terms = [b["term"] for b in item["because"]]
            assert terms == sorted(terms, reverse=True) and len(terms) <= 3
            if entry["model"] == "sequence":  # measured drops, not a sum
                assert all(b["share"] is None for b in item["because"])
            elif entry["model"] in ("ease", "text", "hybrid"):  # exact sums of their terms
                assert item["terms_sum"] == pytest.approx(item["score"], rel=1e-4, abs=1e-5)
            else:  # ALS: the user vector recomputed from the item factors, close to the served
                assert item["terms_sum"] == pytest.approx(item["score"], rel=0.1, abs=1e-3)


def test_sequence_model_is_sasrec_with_the_saved_weights(show, built):
    """The list is what the library's SASRec ranks with these weights and the user's train
    items in time order; each reason is the score drop when that item leaves the sequence."""
    from recsys_lib.data.sequences import Sequences
    from recsys_lib.models.sequential import SASRec

    _, _, split = built
    seqs = Sequences.from_frame(split.train_df, split.train.catalogue)
    model = SASRec(dim=16, layers=1, heads=1)
    model.config.max_length = SEQUENCE["max_length"]
    model.train_, model.device_ = seqs, "cpu"
    show._sequence_logits([np.array([0])])  # rebuilds the network from the saved weights
    model.net_ = show._sequence_net
    for row in (0, 7, 31):
        user = int(show.rec.user_ids[row])
        entry = next(e for e in show.user_view(user)["lists"] if e["model"] == "sequence")
        expected = show.rec.item_ids[model.recommend([row], 10)[0]].tolist()
        assert [e["item_id"] for e in entry["items"]] == expected
        order = seqs.items[row]
        top = entry["items"][0]
        col = int(show.rec.catalogue.item_index([top["item_id"]])[0])
        window = order[-SEQUENCE["max_length"] :]
        assert {
            int(show.rec.catalogue.item_index([b["item_id"]])[0]) for b in top["because"]
        } <= set(window.tolist())
        if top["because"]:
            first = top["because"][0]
            pos = int(
                np.flatnonzero(order == show.rec.catalogue.item_index([first["item_id"]])[0])[0]
            )
            full = model.score([row])[0, col]
            without = show._sequence_logits([np.delete(order, pos)])[0, col]
            assert first["term"] == pytest.approx(full - without, rel=1e-4, abs=1e-5)


def test_without_sequence_model_it_is_listed_as_absent(built):
    folder = built[0].parent / "noseq"
    show = Showcase.load(folder / "explorer", Recommender.load(folder))
    assert show.models == ["popularity", "als", "ease", "text", "hybrid"]
    assert "--sequence" in show.provenance()["absent"]["sequence"]
    assert [e["model"] for e in show.user_view(1)["lists"]] == show.models


def test_ease_reasons_are_the_largest_weights(show):
    user = int(show.rec.user_ids[0])
    cols = show.rec.catalogue.item_index(show.rec.history(user))
    ease = next(e for e in show.user_view(user)["lists"] if e["model"] == "ease")
    top = ease["items"][0]
    col = int(show.rec.catalogue.item_index([top["item_id"]])[0])
    weights = show.ease[cols, col]
    order = np.argsort(-weights, kind="stable")[:3]
    expected = [int(show.rec.item_ids[cols[j]]) for j in order if weights[j] > 0]
    assert expected and [b["item_id"] for b in top["because"]] == expected
    assert top["score"] == pytest.approx(float(weights.sum()), rel=1e-5)


def test_hits_and_ndcg_use_the_held_out_items(show, built):
    _, _, split = built
    test = split.test.matrix
    for row in range(0, 60, 7):
        user = int(show.rec.user_ids[row])
        view = show.user_view(user)
        truth = set(
            split.test.catalogue.item_ids[
                test.indices[test.indptr[row] : test.indptr[row + 1]]
            ].tolist()
        )
        assert {t["item_id"] for t in view["test_items"]} == truth
        for entry in view["lists"]:
            flags = [e["hit"] for e in entry["items"]]
            assert flags == [e["item_id"] in truth for e in entry["items"]]
            cols = show.rec.catalogue.item_index([e["item_id"] for e in entry["items"]])
            expected = ndcg_at_k(cols[None], test[row], 10) if truth else None
            assert entry["ndcg@10"] == (pytest.approx(expected) if truth else None)
            assert entry["hits"] == sum(flags)


def test_history_is_newest_first_with_times(show, built):
    _, data, split = built
    user = int(show.rec.user_ids[2])
    view = show.user_view(user)
    times = [h["time"] for h in view["history"]]
    assert times == sorted(times, reverse=True)
    mine = split.train_df[split.train_df["user_id"] == user]
    assert len(view["history"]) == min(50, len(mine)) == view["n_train"]
    assert set(mine["timestamp"].tolist()) >= set(times)


def test_cold_user_uses_text_and_folded_in_als(show):
    from recsys_lib.models.mf import als_fold_in

    liked = [int(i) for i in show.rec.item_ids[[0, 5, 9]]]
    answer = show.cold_user(liked, k=5)
    lists = {e["model"]: e for e in answer["lists"]}
    assert list(lists) == ["text", "hybrid"]
    cols = np.array([0, 5, 9])
    profile = show.item_text[cols].mean(0)
    scores = show.item_text @ profile
    scores[cols] = -np.inf
    assert [e["item_id"] for e in lists["text"]["items"]] == show.rec.item_ids[
        np.argsort(-scores, kind="stable")[:5]
    ].tolist()
    vec = als_fold_in(show.rec.item_factors, cols, show.als_reg, show.als_alpha)
    als = show.rec.item_factors @ vec
    z = lambda s: (s - s.mean()) / s.std()  # noqa: E731
    hybrid = (1 - show.weight) * z(als) + show.weight * z(show.item_text @ profile)
    hybrid[cols] = -np.inf
    assert [e["item_id"] for e in lists["hybrid"]["items"]] == show.rec.item_ids[
        np.argsort(-hybrid, kind="stable")[:5]
    ].tolist()
    for entry in answer["lists"]:
        for item in entry["items"]:
            assert {b["item_id"] for b in item["because"]} <= set(liked)
            assert item["terms_sum"] == pytest.approx(item["score"], rel=1e-4, abs=1e-5)
    assert show.cold_user(liked + liked[:1], k=5) == answer  # a repeated like counts once


def test_cold_film_ranks_users_by_mapped_factors(show):
    answer = show.cold_film("Trail boots", ["hiking", "outdoor"], "Everything for hiking fans.", 8)
    assert "Trail boots" in answer["text"] and "hiking" in answer["text"]
    assert len(answer["users"]) == 8 and answer["n_users"] == 60
    assert all("Hiking" in s["title"] for s in answer["similar_items"][:3])
    coef, x_mean, y_mean = show.ridge
    emb = HashingEncoder().encode([answer["text"]])[0]
    factors = (emb - x_mean) @ coef + y_mean
    everyone = (show.rec.user_factors @ factors).astype(np.float32)
    known = show.rec.user_factors @ show.rec.item_factors.T
    known[show.rec.seen.nonzero()] = -np.inf
    ranks = 1 + (known > everyone[:, None]).sum(1)
    assert answer["reach"] == int((ranks <= 10).sum())
    listed = [(u["rank"], -u["score"]) for u in answer["users"]]
    assert listed == sorted(listed) and listed[0][0] == ranks.min()
    for u in answer["users"]:
        row = int(show.rec.catalogue.user_index([u["user_id"]])[0])
        assert u["rank"] == ranks[row]
        assert u["score"] == pytest.approx(float(everyone[row]), rel=1e-4, abs=1e-7)


def test_searches(show):
    found = show.search_users("1", 5)
    assert found[0]["user_id"] == 1 and all("1" in str(u["user_id"]) for u in found)
    assert [u["user_id"] for u in show.search_users("", 3)] == [1, 2, 3]
    items = show.search_items("hik", 50)
    assert items and all("hik" in i["title"].lower() for i in items)
    counts = [i["n_train"] for i in items]
    assert counts == sorted(counts, reverse=True)


# ----------------------------------------------------------------------------- over HTTP
def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    for control in ("user-query", "item-query", "film-title", "film-genres", "film-description"):
        assert f'<label for="{control}"' in html and f'id="{control}"' in html
    assert "http://" not in html and "https://" not in html  # nothing from outside
    css = client.get("/explorer/static/explorer.css")
    js = client.get("/explorer/static/explorer.js")
    assert css.status_code == js.status_code == 200
    assert css.headers["content-type"].startswith("text/css") and "grid" in css.text
    assert js.headers["content-type"].startswith("text/javascript") and "/explorer/api" in js.text
    assert client.get("/explorer/static/..%2Fservice.py").status_code == 404
    assert client.get("/explorer/static/index.html").status_code == 404


def test_api_answers_like_the_library(client, show):
    user = int(show.rec.user_ids[4])
    assert client.get("/explorer/api/user", params={"user_id": user}).json() == json.loads(
        json.dumps(show.user_view(user))
    )
    prov = client.get("/explorer/api/provenance").json()
    assert prov["dataset_key"].startswith("own-") and prov["absent"] == {}
    assert prov["models"]["sequence"]["params"]["dim"] == 16
    assert set(prov["rules"]) == {"popularity", "als", "ease", "text", "hybrid", "sequence"}
    assert client.get("/explorer/api/users", params={"q": "5"}).json()["users"][0]["user_id"] == 5
    assert client.get("/explorer/api/items", params={"q": "music"}).json()["items"]
    cold = client.post("/explorer/api/cold-user", json={"item_ids": [1, 2], "k": 4}).json()
    assert [len(e["items"]) for e in cold["lists"]] == [4, 4]
    film = client.post(
        "/explorer/api/cold-film",
        json={"title": "Chess club", "genres": "gaming|indoor", "description": "Board games."},
    ).json()
    assert film["text"].startswith("Item: Chess club.") and len(film["users"]) == 10
    assert "/explorer/api/user" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "words"),
    [
        ("get", "/explorer/api/user", {"params": {"user_id": 99999}}, 404, "user id 99999 not in"),
        ("get", "/explorer/api/user", {"params": {"user_id": "abc"}}, 422, "user_id must be an integer"),
        ("get", "/explorer/api/user", {"params": {}}, 422, "user_id"),
        ("get", "/explorer/api/user", {"params": {"user_id": 1, "k": 0}}, 422, "k must be an integer between 1 and 50"),
        ("get", "/explorer/api/user", {"params": {"user_id": 1, "k": 51}}, 422, "k must be an integer between 1 and 50"),
        ("get", "/explorer/api/users", {"params": {"q": "x" * 101}}, 422, "q:"),
        ("get", "/explorer/api/users", {"params": {"limit": 0}}, 422, "k must be an integer between 1 and 200"),
        ("get", "/explorer/api/items", {"params": {"limit": "many"}}, 422, "limit:"),
        ("post", "/explorer/api/cold-user", {"json": {"item_ids": []}}, 422, "1 to 100 liked items"),
        ("post", "/explorer/api/cold-user", {"json": {"item_ids": [999]}}, 404, "item id 999 not in"),
        ("post", "/explorer/api/cold-user", {"json": {"item_ids": ["x"]}}, 422, "must be integers"),
        ("post", "/explorer/api/cold-user", {"json": {"item_ids": [1], "K": 3}}, 422, "K:"),
        ("post", "/explorer/api/cold-user", {"json": {"item_ids": list(range(1, 102))}}, 422, "1 to 100"),
        ("post", "/explorer/api/cold-film", {"json": {"title": " "}}, 422, "title must be a non-empty"),
        ("post", "/explorer/api/cold-film", {"json": {"title": "a", "description": "d" * 2001}}, 422, "description"),
        ("post", "/explorer/api/cold-film", {"json": {"title": "a", "n_users": 0}}, 422, "between 1 and 100"),
        ("post", "/explorer/api/cold-film", {"json": {}}, 422, "title"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_4xx(client, method, path, kwargs, status, words):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


def test_key_rule_and_missing_explorer(built, monkeypatch):
    monkeypatch.setattr(showcase_module, "_default_encoder", hashing_factory)
    with TestClient(create_app(built[0], api_key="s3cret")) as c:
        assert c.get("/").status_code == 200  # the page itself holds no data
        assert c.get("/explorer/static/explorer.js").status_code == 200
        for path in (
            "/explorer/api/provenance",
            "/explorer/api/users",
            "/explorer/api/user?user_id=1",
        ):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post("/explorer/api/cold-user", json={"item_ids": [1]}).status_code == 401
    plain = built[0].parent / "plain"
    with TestClient(create_app(plain)) as c:
        assert c.get("/").status_code == 200
        answer = c.get("/explorer/api/provenance")
        assert answer.status_code == 404 and "build-artefact" in answer.json()["detail"]
        assert str(plain) not in answer.json()["detail"]  # no server paths in answers
        assert c.get("/recommend", params={"user_id": 1}).status_code == 200  # ALS still served


def test_reload_swaps_the_explorer_too(built, monkeypatch):
    monkeypatch.setattr(showcase_module, "_default_encoder", hashing_factory)
    folder = built[0]
    with TestClient(create_app(folder)) as c:
        before = c.get("/explorer/api/provenance").json()["sha256"]
        assert c.post("/reload", json={"artefact": str(folder.parent / "plain")}).status_code == 200
        assert c.get("/explorer/api/provenance").status_code == 404
        assert c.post("/reload", json={"artefact": str(folder)}).status_code == 200
        assert c.get("/explorer/api/provenance").json()["sha256"] == before


def test_string_ids_of_own_data(tmp_path, monkeypatch):
    """Own data often has text ids ("u7", "sku-007"): every endpoint takes and returns them."""
    import pandas as pd

    folder = write_example_dataset(tmp_path / "shop", n_users=30, n_items=40, seed=3)
    frame = pd.read_csv(folder / "interactions.csv")
    frame["user_id"] = "u" + frame["user_id"].astype(str)
    frame["item_id"] = "sku-" + frame["item_id"].map("{:03d}".format)
    frame.to_csv(folder / "interactions.csv", index=False)
    items = pd.read_csv(folder / "items.csv")
    items["item_id"] = "sku-" + items["item_id"].map("{:03d}".format)
    items.to_csv(folder / "items.csv", index=False)
    (folder / "users.csv").unlink()
    art = build_artefact(tmp_path / "art", dataset=str(folder), encoder=HashingEncoder())
    monkeypatch.setattr(showcase_module, "_default_encoder", hashing_factory)
    with TestClient(create_app(art)) as c:
        view = c.get("/explorer/api/user", params={"user_id": "u7"}).json()
        assert view["user_id"] == "u7" and all(
            e["item_id"].startswith("sku-") for entry in view["lists"] for e in entry["items"]
        )
        assert (
            c.get("/explorer/api/users", params={"q": "u1"}).json()["users"][0]["user_id"] == "u1"
        )
        liked = [view["history"][0]["item_id"], view["history"][1]["item_id"]]
        cold = c.post("/explorer/api/cold-user", json={"item_ids": liked}).json()
        assert {
            b["item_id"] for e in cold["lists"] for i in e["items"] for b in i["because"]
        } <= set(liked)
        assert c.post("/explorer/api/cold-user", json={"item_ids": ["sku-7"]}).status_code == 404
        assert c.post("/explorer/api/cold-film", json={"title": "Camp stove"}).status_code == 200


def test_warm_up_and_new_item_text(built):
    folder = built[0]
    show = Showcase.load(folder / "explorer", Recommender.load(folder), None, hashing_factory)
    assert show._encoder is None and show._sequence_net is None
    show.warm_up()
    assert isinstance(show._encoder, HashingEncoder) and show._sequence_net is not None
    text, note = show.describe_new_item("Camp stove", ["cooking", "outdoor"], "Light and small.")
    assert text == "Item: Camp stove. Light and small. Tags: cooking, outdoor."
    assert "template" in note and "plus the description" not in note
    show.manifest["models"]["text"]["template"] = "Movie: {title}. Genres: {genres}."  # MovieLens's
    text, note = show.describe_new_item("Moon Rescue (2026)", ["Sci-Fi"], "A stranded crew.")
    assert text == "Movie: Moon Rescue (2026). Genres: Sci-Fi. A stranded crew."
    assert "plus the description" in note
