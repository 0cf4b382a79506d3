import json

import numpy as np
import pandas as pd
import pytest

from recsys_lib.data.interactions import Catalogue, Interactions
from recsys_lib.models.base import FactorModel, Popularity
from recsys_lib.production.serving import (
    ArtefactError,
    Recommender,
    UnknownIdError,
    latency_percentiles,
    time_requests,
)


@pytest.fixture
def small():
    """3 users (ids 10, 20, 30) x 4 items (ids 100..400) with hand-picked 1-d factors."""
    frame = pd.DataFrame(
        {"user_id": [10, 10, 20, 30, 30, 30], "item_id": [100, 200, 300, 100, 200, 300]}
    )
    train = Interactions.from_frame(
        frame, Catalogue(np.array([10, 20, 30]), np.arange(100, 500, 100))
    )
    user_f = np.array([[1.0], [1.0], [-1.0]], dtype=np.float32)
    item_f = np.array([[4.0], [3.0], [2.0], [1.0]], dtype=np.float32)
    model = FactorModel(user_f, item_f).fit(train)
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    names = pd.Series(["A", "B", "C", "D"], index=[100, 200, 300, 400])
    return Recommender.from_model(model, train, item_embeddings=emb, item_names=names), train


def test_recommend_excludes_seen_and_ranks_by_score(small):
    rec, _ = small
    # user 10 saw 100, 200; scores 4,3,2,1 -> remaining 300 then 400
    assert rec.recommend(10, 2).tolist() == [300, 400]
    # user 20 saw 300; best unseen 100, 200
    assert rec.recommend(20, 2).tolist() == [100, 200]
    # user 30 saw everything but 400: fewer than k results, no padding
    assert rec.recommend(30, 3).tolist() == [400]
    assert rec.recommend(np.int64(10), 1).tolist() == [300]


def test_recommend_matches_the_model_contract_on_real_data(benchmark_split):
    train_df, _, train, _ = benchmark_split
    rng = np.random.default_rng(0)
    model = FactorModel(rng.normal(size=(train.shape[0], 8)), rng.normal(size=(train.shape[1], 8)))
    model.fit(train)
    rec = Recommender.from_model(model, train)
    users = train.catalogue.user_ids[:50]
    expected = model.recommend_frame(users, 10)["item_id"].to_numpy().reshape(50, 10)
    np.testing.assert_array_equal(rec.recommend_many(users, 10), expected)
    np.testing.assert_array_equal(rec.recommend(users[3], 10), expected[3])
    seen = set(train_df.loc[train_df.user_id == users[3], "item_id"])
    assert not seen & set(rec.recommend(users[3], 10).tolist())


def test_recommend_many_pads_users_with_few_unseen_items(small):
    rec, _ = small
    out = rec.recommend_many([10, 30], 2)
    assert out.tolist() == [[300, 400], [400, -1]]


def test_unknown_ids_and_bad_k_give_clear_errors(small):
    rec, _ = small
    with pytest.raises(
        UnknownIdError, match=r"user id 99999 not in the training catalogue \(3 users\)"
    ):
        rec.recommend(99999, 2)
    with pytest.raises(
        UnknownIdError, match=r"item id 7 not in the training catalogue \(4 items\)"
    ):
        rec.similar_items(7, 2)
    with pytest.raises(UnknownIdError, match="user id 5"):
        rec.recommend_many([10, 5], 2)
    for bad in (0, 5, -1):
        with pytest.raises(ValueError, match=f"between 1 and 4.*got {bad}"):
            rec.recommend(10, bad)
    with pytest.raises(TypeError, match="integer"):
        rec.recommend(10, 2.0)


def test_from_model_refuses_a_model_without_factors(small):
    _, train = small
    with pytest.raises(ValueError, match="no user_factors"):
        Recommender.from_model(Popularity().fit(train), train)


def test_similar_items_in_text_and_factor_space(small):
    rec, _ = small
    assert rec.similar_items(100, 1).tolist() == [200]  # text: [1,0] closest to [0.9,0.1]
    assert rec.similar_items(300, 1).tolist() == [400]
    # factors are all positive scalars: cosine 1 for every pair, ties go to the lowest column
    assert rec.similar_items(300, 3, space="factors").tolist() == [100, 200, 400]
    assert 100 not in rec.similar_items(100, 3).tolist()


def test_explain_picks_the_most_similar_item_from_the_history(small):
    rec, _ = small
    table = rec.explain(20, [100, 400])  # user 20's history is {300}
    assert table["because_item_id"].tolist() == [300, 300]
    table = rec.explain(10, [300, 400])  # history {100, 200}: 300=[0,1] closer to 200=[.9,.1]
    assert table["because_item_id"].tolist() == [200, 200]
    assert table["reason"].tolist() == ["because you liked B", "because you liked B"]
    sim = float(np.dot([0, 1], [0.9, 0.1]) / np.linalg.norm([0.9, 0.1]))
    assert table["similarity"].iloc[0] == pytest.approx(sim, rel=1e-6)
    for user in (10, 20, 30):
        recs = rec.recommend(user, 2)
        assert set(rec.explain(user, recs)["because_item_id"]) <= set(rec.history(user).tolist())


def test_save_load_round_trip(small, tmp_path):
    rec, _ = small
    path = rec.save(tmp_path / "rec")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["n_users"] == 3
    back = Recommender.load(path)
    for name in ("user_ids", "item_ids", "user_factors", "item_factors", "item_embeddings",
                 "item_names"):  # fmt: skip
        np.testing.assert_array_equal(getattr(back, name), getattr(rec, name))
    assert (back.seen != rec.seen).nnz == 0
    assert (
        back.recommend_many([10, 20, 30], 2).tolist()
        == rec.recommend_many([10, 20, 30], 2).tolist()
    )
    # the npz holds no pickled object
    with np.load(path / "arrays.npz", allow_pickle=False) as data:
        assert all(data[f].dtype != object for f in data.files)


def test_save_refuses_to_overwrite_and_leaves_nothing_on_failure(small, tmp_path, monkeypatch):
    rec, _ = small
    rec.save(tmp_path / "rec")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        rec.save(tmp_path / "rec")
    rec.save(tmp_path / "rec", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        rec.save(tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


def test_load_rejects_corrupt_or_newer_artefacts(small, tmp_path):
    rec, _ = small
    path = rec.save(tmp_path / "rec")
    with pytest.raises(ArtefactError, match="no saved recommender"):
        Recommender.load(tmp_path / "missing")
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))
    with pytest.raises(ArtefactError, match="format version 2"):
        Recommender.load(path)
    (path / "manifest.json").write_text(json.dumps(manifest))
    with open(path / "arrays.npz", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(ArtefactError, match="checksum"):
        Recommender.load(path)


def test_string_ids_round_trip(tmp_path):
    frame = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "b"]})
    train = Interactions.from_frame(frame)
    model = FactorModel(np.eye(2), np.eye(2)).fit(train)
    rec = Recommender.load(Recommender.from_model(model, train).save(tmp_path / "s"))
    assert rec.recommend("u1", 1).tolist() == ["b"]
    assert rec.recommend_many(["u1"], 2).tolist() == [["b", ""]]


def test_latency_percentiles_and_timing():
    lat = latency_percentiles(np.arange(1, 101) / 1000.0)
    assert lat["p50_ms"] == pytest.approx(50.5)
    assert lat["p99_ms"] == pytest.approx(99.01)
    with pytest.raises(ValueError, match="no latencies"):
        latency_percentiles([])
    calls = []
    times = time_requests(calls.append, [1, 2, 3], warmup=2)
    assert calls == [1, 2, 1, 2, 3] and times.shape == (3,) and (times >= 0).all()


def test_duplicate_ids_are_refused(small):
    rec, train = small
    with pytest.raises(ValueError, match="duplicates"):
        Recommender([10, 10, 30], rec.item_ids, rec.user_factors, rec.item_factors, train.matrix)
    assert rec.catalogue.user_index([30]).tolist() == [2]  # the shared id map is exposed


def test_load_rejects_a_manifest_that_is_not_json(small, tmp_path):
    rec, _ = small
    path = rec.save(tmp_path / "rec")
    (path / "manifest.json").write_text('{"format": "recsys')  # truncated write
    with pytest.raises(ArtefactError, match="not valid JSON"):
        Recommender.load(path)
    (path / "manifest.json").write_text("[1, 2]")  # valid JSON, wrong shape
    with pytest.raises(ArtefactError, match="manifest"):
        Recommender.load(path)


# ------------------------------------------------------------------ metadata and signatures
def _rewrite(path, edit, *, manifest_edit=None):
    """Edit an artefact's arrays as an attacker would and recompute the checksum."""
    from recsys_lib.data.movielens import file_digest

    with np.load(path / "arrays.npz", allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    edit(arrays)
    with open(path / "arrays.npz", "wb") as handle:
        np.savez(handle, **arrays)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["sha256"] = file_digest(path / "arrays.npz", "sha256")
    if manifest_edit is not None:
        manifest_edit(manifest, arrays)
    (path / "manifest.json").write_text(json.dumps(manifest))


def _forget_seen(arrays):  # user 10 no longer "saw" anything: train items would be served
    arrays["seen_indices"] = arrays["seen_indices"][2:]
    arrays["seen_indptr"] = np.maximum(arrays["seen_indptr"] - 2, 0)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_forget_seen, "seen_indices has shape [4], the manifest says [6]"),
        (lambda a: a.update(user_ids=a["user_ids"][::-1].copy()), "user_ids differ"),
        (lambda a: a.update(item_ids=a["item_ids"] + 1), "item_ids differ"),
        (lambda a: a["seen_indptr"].__setitem__(1, 9), "not a valid users x items CSR"),
        (lambda a: a["seen_indices"].__setitem__(0, 99), "not a valid users x items CSR"),
        (lambda a: a["user_factors"].__setitem__(0, np.nan), "user_factors holds NaN"),
        (lambda a: a.update(item_factors=a["item_factors"].astype(np.float64)), "dtype float64"),
        (lambda a: a.pop("item_names"), "differ from the manifest's"),
        (lambda a: a.update(extra=np.zeros(3)), "differ from the manifest's"),
    ],
)
def test_an_edited_and_rehashed_artefact_that_contradicts_its_manifest_is_refused(
    small, tmp_path, edit, words
):
    rec, _ = small
    path = rec.save(tmp_path / "rec")
    _rewrite(path, edit)
    with pytest.raises(ArtefactError, match=words.replace("[", r"\[").replace("]", r"\]")):
        Recommender.load(path)


def test_consistent_edits_are_caught_only_by_a_signature(small, tmp_path, monkeypatch):
    from recsys_lib.production.serving import ARTEFACT_KEY_ENV, _id_digest

    def follow(manifest, arrays):  # the attacker also updates every piece of metadata
        manifest["arrays"]["seen_indices"]["shape"] = list(arrays["seen_indices"].shape)
        manifest["n_seen"] = len(arrays["seen_indices"])
        manifest["ids_sha256"]["user_ids"] = _id_digest(arrays["user_ids"])

    rec, _ = small
    monkeypatch.delenv(ARTEFACT_KEY_ENV, raising=False)
    unsigned = rec.save(tmp_path / "unsigned")
    _rewrite(unsigned, _forget_seen, manifest_edit=follow)
    loaded = Recommender.load(unsigned)  # accepted, as the docs say: a checksum is no signature
    assert loaded.integrity.startswith("unsigned")
    monkeypatch.setenv(ARTEFACT_KEY_ENV, "team-secret")
    with pytest.raises(ArtefactError, match="unsigned but RECSYS_ARTEFACT_KEY is set"):
        Recommender.load(unsigned)
    signed = rec.save(tmp_path / "signed")
    assert Recommender.load(signed).integrity == "signature verified"
    assert Recommender.load(signed).recommend(10, 2).tolist() == rec.recommend(10, 2).tolist()
    _rewrite(signed, _forget_seen, manifest_edit=follow)
    with pytest.raises(ArtefactError, match="signature does not match"):
        Recommender.load(signed)
    other = rec.save(tmp_path / "other", signing_key="another key")
    with pytest.raises(ArtefactError, match="signature does not match"):
        Recommender.load(other)
    monkeypatch.delenv(ARTEFACT_KEY_ENV)
    assert "not verified" in Recommender.load(other).integrity
