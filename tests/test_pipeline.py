import numpy as np
import pytest

from recsys_lib.course import choices
from recsys_lib.course.pipeline import build_quickstart


class FakeEncoder:
    """Deterministic stand-in for TextEncoder: a hash-seeded random unit vector per text."""

    def encode(self, texts):
        out = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def test_quickstart_fits_every_model_and_explains_from_history(movielens, tmp_path, monkeypatch):
    # ALS settings come from chapter 3's choices file (here a stand-in written for the test).
    monkeypatch.setenv(choices.CHOICES_ENV, str(tmp_path / "choices.json"))
    als = {"factors": 16, "regularization": 10.0, "alpha": 2.0}
    choices.write_choice("als", als, chapter="03", smoke=False, seed=42)
    qs = build_quickstart(movielens, encoder=FakeEncoder(), weights=(0.0, 0.5))
    assert qs.models["ALS"].factors == 16
    assert set(qs.models) == {"popularity", "text", "ALS", "hybrid"}
    assert qs.text_weight in (0.0, 0.5) and len(qs.weight_curve) == 2
    table = qs.metrics()
    assert table.loc["ALS", "ndcg@10"] > table.loc["popularity", "ndcg@10"]
    recs = qs.recommend_with_reasons(196, k=5)
    assert len(recs) == 5 and recs["reason"].str.startswith("because you liked ").all()
    history = set(qs.data.train_df.query("user_id == 196")["item_id"])
    titles = movielens.items.set_index("item_id")["title"]
    liked = {r.removeprefix("because you liked ") for r in recs["reason"]}
    assert liked <= set(titles.loc[list(history)])
    assert not set(recs["title"]) & set(titles.loc[list(history)])
    lift = qs.lift("ALS", "popularity")
    assert lift["ci_low"] > 0 and lift["ci_low"] <= lift["difference"] <= lift["ci_high"]
    assert lift["difference"] == table.loc["ALS", "ndcg@10"] - table.loc["popularity", "ndcg@10"]
    profile = qs.text_profile(196)  # what the text side uses: the mean of the history's vectors
    assert set(profile.index) == history
    assert profile["cosine to the user's vector"].is_monotonic_decreasing
    assert profile["cosine to the user's vector"].between(-1 - 1e-6, 1 + 1e-6).all()
    row = qs.data.train.catalogue.user_index([196])[0]
    columns = qs.data.train.catalogue.item_index(list(history))
    mean = qs.item_text[columns].mean(0)
    assert np.allclose(qs.models["text"].user_factors[row], mean, atol=1e-5)
    why = qs.explanations(196, k=5)
    assert why["title"].tolist() == recs["title"].tolist()
    assert set(why["top ALS contributor"]) <= set(titles.loc[list(history)])
    assert (why["agree"] == (why["nearest in text"] == why["top ALS contributor"])).all()


def test_the_hybrid_weight_is_chosen_once_and_read_by_the_quick_start(
    movielens, tmp_path, monkeypatch
):
    monkeypatch.setenv(choices.CHOICES_ENV, str(tmp_path / "choices.json"))
    als = {"factors": 16, "regularization": 10.0, "alpha": 2.0}
    choices.write_choice("als", als, chapter="03", smoke=True, seed=42)
    first = build_quickstart(movielens, encoder=FakeEncoder(), smoke=True)  # chooses and stores
    stored = choices.read_choice(choices.HYBRID_CHOICE, smoke=True, seed=42)
    assert stored["value"] == first.text_weight and stored["als"] == als
    assert stored["grid"]["weight"] == choices.HYBRID_WEIGHTS["smoke"]
    assert len(first.weight_curve) == len(choices.HYBRID_WEIGHTS["smoke"])
    # a stored choice (as chapter 4 writes it) is what the quick start blends with
    choices.write_choice(choices.HYBRID_CHOICE, 0.1, chapter="04", smoke=True, seed=42,
                         evidence={"als": als, "curve": {"weight": [0.1], "ndcg@10": [0.3]}})  # fmt: skip
    second = build_quickstart(movielens, encoder=FakeEncoder(), smoke=True)
    assert second.text_weight == 0.1 and second.models["hybrid"].weights["text"] == 0.1
    # ... unless it was chosen for other ALS settings: then it is chosen again
    choices.write_choice("als", {**als, "factors": 8}, chapter="03", smoke=True, seed=42)
    third = build_quickstart(movielens, encoder=FakeEncoder(), smoke=True)
    assert third.text_weight == first.text_weight or third.models["ALS"].factors == 8
    assert choices.read_choice(choices.HYBRID_CHOICE, smoke=True, seed=42)["als"]["factors"] == 8


def test_chapter_4_blend_grid_is_the_library_grid():
    import json
    from pathlib import Path

    cells = json.loads((Path(__file__).resolve().parent.parent / "notebooks"
                        / "04_similarity_and_hybrid.ipynb").read_text())["cells"]  # fmt: skip
    source = "".join(
        next(c for c in cells if "parameters" in c["metadata"].get("tags", []))["source"]
    )
    line = next(x for x in source.splitlines() if x.startswith("BLEND_WEIGHTS ="))
    assert eval(line.split("=", 1)[1].split("#")[0]) == choices.HYBRID_WEIGHTS["full"]


def test_quickstart_als_is_the_fitted_als_model_or_a_clear_error():
    from recsys_lib.course.pipeline import QuickStart
    from recsys_lib.models.base import Popularity
    from recsys_lib.models.mf import ALS

    als = ALS(factors=4)
    fields = dict.fromkeys(QuickStart.__dataclass_fields__)
    assert QuickStart(**{**fields, "models": {"ALS": als}}).als is als
    with pytest.raises(TypeError, match="models\\['ALS'\\] is a Popularity, not an ALS model"):
        _ = QuickStart(**{**fields, "models": {"ALS": Popularity()}}).als
