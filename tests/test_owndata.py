"""Own data: the loader's output shape, every validation error, the summary, the folder format,
and the quick start notebook end to end on a generated dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_lib.data.movielens import DataError
from recsys_lib.data.owndata import (
    OwnData,
    dataset_key,
    example_ids,
    is_movielens,
    item_template,
    load_dataset,
    load_interactions,
    require,
    subsample_dataset,
    summarize,
    write_example_dataset,
)
from recsys_lib.text.descriptions import DEFAULT_ITEM_TEMPLATE


def clicks() -> pd.DataFrame:
    return pd.DataFrame({
        "customer": ["a", "a", "b", "c"],
        "sku": [10, 11, 10, 12],
        "stars": [5, 3, 4, 1],
        "ts": ["2024-01-01", "2024-01-03", "2024-01-02", "2024-01-11"],
    })  # fmt: skip


def test_loader_gives_movielens_shaped_frames():
    data = load_interactions(clicks(), user_col="customer", item_col="sku", rating_col="stars",
                             time_col="ts")  # fmt: skip
    assert isinstance(data, OwnData)
    r = data.ratings
    assert list(r.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert r["user_id"].tolist() == ["a", "a", "b", "c"] and r["item_id"].dtype == np.int64
    assert r["rating"].tolist() == [5.0, 3.0, 4.0, 1.0]
    assert r["timestamp"].iloc[0] == 1_704_067_200  # 2024-01-01T00:00:00Z in unix seconds
    assert data.items["title"].tolist() == ["10", "11", "12"]  # no item table: the id is the title
    assert data.items["genres"].tolist() == [[], [], []]
    assert data.users["user_id"].tolist() == ["a", "b", "c"]
    assert data.item_template == "Item: {title}."


def test_implicit_feedback_and_file_order_time():
    data = load_interactions(clicks(), user_col="customer", item_col="sku")
    assert (data.ratings["rating"] == 1.0).all()
    assert data.ratings["timestamp"].tolist() == [0, 1, 2, 3]


def test_item_text_and_user_attributes(tmp_path):
    items = pd.DataFrame({"sku": [10, 11, 13], "title": ["Tent", None, "Stove"],
                          "description": ["Sleeps two.", "", None], "tags": ["camp|outdoor", None, "cook"]})  # fmt: skip
    items.to_parquet(tmp_path / "items.parquet")
    users = pd.DataFrame({"customer": ["a", "b", "c"], "segment": ["new", "loyal", "new"]})
    data = load_interactions(clicks(), user_col="customer", item_col="sku",
                             items=tmp_path / "items.parquet", users=users)  # fmt: skip
    items_out = data.items.set_index("item_id")
    assert items_out.index.tolist() == [10, 11, 12, 13]  # 12 only interacted, 13 only listed
    assert items_out["title"].tolist() == ["Tent", "11", "12", "Stove"]
    assert items_out.loc[10, "genres"] == ["camp", "outdoor"] and items_out.loc[11, "genres"] == []
    assert data.item_template == "Item: {title}. {description} Tags: {genres}."
    assert data.users.set_index("user_id").loc["b", "segment"] == "loyal"


def test_csv_round_trip(tmp_path):
    clicks().to_csv(tmp_path / "c.csv", index=False)
    data = load_interactions(tmp_path / "c.csv", user_col="customer", item_col="sku",
                             rating_col="stars")  # fmt: skip
    assert len(data.ratings) == 4 and data.ratings["rating"].sum() == 13.0


@pytest.mark.parametrize(
    ("frame", "kwargs", "words"),
    [
        (clicks().iloc[:0], {}, "has no rows"),
        (clicks(), {"item_col": "product"}, "no column(s) ['product']"),
        (clicks().assign(customer=["a", None, "b", "c"]), {}, "'customer' is empty in 1 row"),
        (clicks().assign(stars=[5, "five", 4, 1]), {"rating_col": "stars"}, "'five' at row 1"),
        (clicks().assign(ts=["2024-01-01", "yesterday", "x", "2024-01-02"]), {"time_col": "ts"},
         "2 unparseable value(s), the first 'yesterday'"),
        (clicks().assign(sku=[10, 10, 10, 12]), {}, "(user 'a', item 10) at row 0"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_problem(frame, kwargs, words):
    args = {"user_col": "customer", "item_col": "sku", **kwargs}
    with pytest.raises(DataError) as err:
        load_interactions(frame, **args)
    assert words in str(err.value)


def test_bad_files_and_options(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_interactions(tmp_path / "nope.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match=r"give a \.csv or \.parquet"):
        load_interactions(tmp_path / "x.json")
    with pytest.raises(ValueError, match="duplicates must be"):
        load_interactions(clicks(), user_col="customer", item_col="sku", duplicates="sum")
    dup_items = pd.DataFrame({"sku": [10, 10]})
    with pytest.raises(DataError, match="item id 10 more than once"):
        load_interactions(clicks(), user_col="customer", item_col="sku", items=dup_items)


def test_duplicates_first_and_last_by_time():
    frame = clicks().assign(sku=[10, 10, 10, 12], stars=[5, 2, 4, 1],
                            ts=["2024-01-05", "2024-01-01", "2024-01-02", "2024-01-03"])  # fmt: skip
    kw = {"user_col": "customer", "item_col": "sku", "rating_col": "stars", "time_col": "ts"}
    last = load_interactions(frame, duplicates="last", **kw).ratings
    first = load_interactions(frame, duplicates="first", **kw).ratings
    pick = lambda r: r[(r.user_id == "a") & (r.item_id == 10)]["rating"].tolist()  # noqa: E731
    assert pick(last) == [5.0] and pick(first) == [2.0] and len(last) == 3


def test_summary_by_hand():
    data = load_interactions(clicks(), user_col="customer", item_col="sku", rating_col="stars",
                             time_col="ts")  # fmt: skip
    s = summarize(data)
    assert (s["interactions"], s["users"], s["items"]) == (4, 3, 3)
    assert s["density"] == pytest.approx(4 / 9)
    assert s["span_days"] == 10.0 and s["feedback"] == "ratings 1..5"
    assert s["users_with_one_interaction"] == 2 and s["median_interactions_per_user"] == 1.0


def test_load_dataset_folder_file_and_movielens(tmp_path, movielens):
    folder = write_example_dataset(tmp_path / "shop", n_users=20, n_items=30, seed=1)
    data = load_dataset(folder)
    assert data.ratings["user_id"].nunique() == 20 and len(data.items) <= 30
    assert data.ratings["rating"].between(1, 5).all() and data.ratings["timestamp"].min() > 0
    assert "segment" in data.users.columns and "{description}" in data.item_template
    only = load_dataset(folder / "interactions.csv")
    assert len(only.ratings) == len(data.ratings) and only.items["title"].iloc[0] == "1"
    assert len(load_dataset("movielens-100k").ratings) == len(movielens.ratings)
    with pytest.raises(DataError, match="neither 'movielens-100k'"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no interactions.csv"):
        load_dataset(tmp_path / "empty")


def test_write_example_dataset_is_seeded(tmp_path):
    a = write_example_dataset(tmp_path / "a", seed=3)
    b = write_example_dataset(tmp_path / "b", seed=3)
    assert (a / "interactions.csv").read_text() == (b / "interactions.csv").read_text()
    per_user = pd.read_csv(a / "interactions.csv").groupby("user_id").size()
    assert per_user.between(8, 20).all()


def test_dataset_key_and_template_tell_datasets_apart(tmp_path, movielens):
    kw = {"user_col": "customer", "item_col": "sku", "rating_col": "stars"}
    data = load_interactions(clicks(), **kw)
    assert is_movielens(movielens) and not is_movielens(data)
    assert dataset_key(movielens) == "movielens-100k"
    key = dataset_key(data)
    assert key.startswith("own-") and len(key) == len("own-") + 12
    assert dataset_key(load_interactions(clicks(), **kw)) == key  # the same rows, the same key
    changed = load_interactions(clicks().assign(stars=[5, 3, 4, 2]), **kw)
    assert dataset_key(changed) != key  # one rating differs
    assert item_template(movielens) == DEFAULT_ITEM_TEMPLATE
    assert item_template(data) == "Item: {title}."


def test_example_ids_hand_picked_on_movielens_busiest_on_own_data(movielens):
    assert example_ids(movielens, "item", [50, 181, 99_999]) == [50, 181]  # 99999 is no film
    assert example_ids(movielens, "user", [1, 42], among=[42]) == [42]
    frame = pd.DataFrame({"customer": ["a", "a", "b", "c", "c", "c"],
                          "sku": [10, 11, 10, 12, 10, 11]})  # fmt: skip
    data = load_interactions(frame, user_col="customer", item_col="sku")
    # item 10: 3 interactions, 11: 2, 12: 1; users c: 3, a: 2, b: 1
    assert example_ids(data, "item", [50, 181]) == [10, 11]
    assert example_ids(data, "item", [50, 181], among=[11, 12]) == [11, 12]
    assert example_ids(data, "user", [1, 42, 405, 7]) == ["c", "a", "b"]  # only three users
    with pytest.raises(ValueError, match="kind must be 'user' or 'item', got 'film'"):
        example_ids(data, "film", [1])


def test_build_artefact_on_own_data(tmp_path):
    from recsys_lib.production.service import build_artefact
    from recsys_lib.production.serving import Recommender

    folder = write_example_dataset(tmp_path / "shop", n_users=30, n_items=40, seed=2)
    out = build_artefact(tmp_path / "art", dataset=str(folder))
    rec = Recommender.load(out)
    assert rec.n_users == 30 and len(rec.recommend(1, 5)) == 5


def test_flags_say_whether_time_and_text_were_given(tmp_path):
    folder = write_example_dataset(tmp_path / "shop", n_users=20, n_items=30, seed=1)
    full = load_dataset(folder)
    assert full.has_time and full.has_text
    bare = load_dataset(folder / "interactions.csv")
    assert bare.has_time and not bare.has_text
    no_time = load_interactions(clicks(), user_col="customer", item_col="sku")
    assert not no_time.has_time and not no_time.has_text
    tags_only = load_interactions(
        clicks(), "customer", "sku", items=pd.DataFrame({"sku": [10, 11, 12], "tags": "a|b"})
    )
    assert not tags_only.has_text
    titled = load_interactions(
        clicks(), "customer", "sku", items=pd.DataFrame({"sku": [10, 11, 12], "title": "x"})
    )
    assert titled.has_text


def test_require_names_what_a_chapter_lacks_and_how_to_add_it(movielens):
    require(movielens, "chapter 6", "time", "text")  # MovieLens has both
    no_time = load_interactions(clicks(), user_col="customer", item_col="sku", time_col=None)
    with pytest.raises(DataError, match=r"chapter 6 needs a timestamp column.*'timestamp'"):
        require(no_time, "chapter 6", "time")
    with pytest.raises(DataError, match=r"chapter 7 needs item titles or descriptions.*items\.csv"):
        require(no_time, "chapter 7", "text")
    with pytest.raises(DataError, match="timestamp column in the interactions and item titles"):
        require(no_time, "chapter 5", "time", "text")
    timed = load_interactions(clicks(), user_col="customer", item_col="sku", time_col="ts")
    require(timed, "chapter 6", "time")
    with pytest.raises(ValueError, match="needs must be among"):
        require(timed, "chapter 6", "order")


def test_subsample_dataset_keeps_type_flags_and_matching_tables(tmp_path, movielens):
    own = load_dataset(write_example_dataset(tmp_path / "shop", n_users=60, n_items=80, seed=0))
    small = subsample_dataset(own, n_users=10, n_items=30, seed=3)
    assert (
        isinstance(small, OwnData) and small.has_text and small.item_template == own.item_template
    )
    assert small.ratings["user_id"].nunique() == 10 and small.ratings["item_id"].nunique() <= 30
    assert set(small.items["item_id"]) == set(small.ratings["item_id"])
    assert set(small.users["user_id"]) == set(small.ratings["user_id"])
    ml = subsample_dataset(movielens, n_users=40, n_items=150, seed=42)
    assert is_movielens(ml) and ml.ratings["user_id"].nunique() == 40
    assert set(ml.users["user_id"]) == set(ml.ratings["user_id"])


@pytest.mark.notebook
def test_quickstart_runs_end_to_end_on_generated_data(tmp_path, monkeypatch):
    """The README's command: python -m recsys_lib.course.notebooks run --only 00_quickstart --dataset DIR"""
    import json

    from recsys_lib.course.notebooks import main

    write_example_dataset(tmp_path / "shop", n_users=60, n_items=80, seed=0)
    # run from another folder, as a reader would: RECSYS_HOME says where the course lives
    monkeypatch.setenv("RECSYS_HOME", str(Path(__file__).resolve().parent.parent))
    monkeypatch.setenv("RECSYS_CHOICES", str(tmp_path / "choices.json"))  # not the course's file
    monkeypatch.chdir(tmp_path)  # a relative path, as a reader would type it
    build = tmp_path / "build"
    args = [
        "run",
        "--smoke",
        "--only",
        "00_quickstart",
        "--dataset",
        "shop",
        "--build-dir",
        str(build),
    ]
    assert main(args) == 0
    m = json.loads((build / "metrics.json").read_text())["00_quickstart"]
    for name in ("popularity", "text", "als", "hybrid"):
        assert 0.0 <= m[f"{name}_ndcg@10"] <= 1.0
    # the themes are in the item text, so the text recommender beats popularity here
    assert m["text_ndcg@10"] > m["popularity_ndcg@10"]
    executed = (build / "notebooks" / "00_quickstart.ipynb").read_text()
    assert "Everything for" in executed and "Toy Story" not in executed  # it ran on our data


#: Chapters 0-4 on a generated dataset: name pattern for --only -> a metric that must be there.
OWN_DATA_CHAPTERS = {
    "00_data_and_evaluation": "popularity_ndcg@10",
    "01_text_descriptions": "n_item_descriptions",
    "02_bert_embeddings": "n_item_embeddings",
    "03_matrix_factorization": "als_ndcg@10",
    "04_similarity_and_hybrid": "hybrid_ndcg@10",
}


@pytest.mark.notebook
@pytest.mark.parametrize("chapter", list(OWN_DATA_CHAPTERS))
def test_chapter_runs_end_to_end_on_generated_data(chapter, tmp_path, monkeypatch):
    """The README's command for chapters 0-4: run --smoke --only CHAPTER --dataset DIR.

    Each run keeps its validated choices in its own file (RECSYS_CHOICES), so runs in parallel
    never race on the course's build/choices.json.
    """
    import json

    from recsys_lib.course.notebooks import main

    folder = write_example_dataset(tmp_path / "shop", n_users=60, n_items=80, seed=0)
    monkeypatch.setenv("RECSYS_CHOICES", str(tmp_path / "choices.json"))
    build = tmp_path / "build"
    args = [
        "run",
        "--smoke",
        "--only",
        chapter,
        "--dataset",
        str(folder),
        "--build-dir",
        str(build),
    ]
    assert main(args) == 0, (build / "summary.md").read_text()
    metrics = json.loads((build / "metrics.json").read_text())[chapter]
    assert OWN_DATA_CHAPTERS[chapter] in metrics
    cells = json.loads((build / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
    shown = json.dumps([c.get("outputs", []) for c in cells])  # what the reader sees
    assert "Toy Story" not in shown and "Star Wars" not in shown  # it ran on our data


# ------------------------------------------------------------------ ids, ratings, time units
def _csv(tmp_path, text: str, name: str = "interactions.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ids_are_kept_as_written_in_a_csv(tmp_path):
    path = _csv(tmp_path, "user_id,item_id\n1,007\n1,7\n2,0007\n")
    data = load_interactions(path)
    assert sorted(data.ratings["item_id"]) == ["0007", "007", "7"]  # three items, not one
    assert data.items["item_id"].nunique() == 3
    assert data.ratings["user_id"].dtype.kind in "iu"  # plain integers stay integers
    items = _csv(tmp_path, "item_id,title\n007,Bond\n7,Seven\n0007,Zeros\n", "items.csv")
    titled = load_interactions(path, items=items)
    assert dict(zip(titled.items["item_id"], titled.items["title"], strict=True)) == {
        "007": "Bond", "7": "Seven", "0007": "Zeros"}  # fmt: skip


def test_plain_integer_ids_stay_integers_and_side_tables_follow(tmp_path):
    path = _csv(tmp_path, "user_id,item_id\n1,7\n2,8\n")
    items = _csv(tmp_path, "item_id,title\n7,Seven\n8,Eight\n", "items.csv")
    data = load_interactions(path, items=items)
    assert data.items["item_id"].tolist() == [7, 8] and data.items["title"].tolist()[0] == "Seven"
    bad_items = _csv(tmp_path, "item_id,title\n007,Seven\n", "bad.csv")
    with pytest.raises(DataError, match="items column 'item_id' has 1 non-integer value"):
        load_interactions(path, items=bad_items)


def test_a_frame_mixing_int_and_text_ids_that_collide_is_refused():
    frame = pd.DataFrame({"user_id": [1, 1], "item_id": pd.Series([7, "7"], dtype=object)})
    with pytest.raises(DataError, match="holds both 7 and '7'"):
        load_interactions(frame)


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_ratings_are_refused_naming_the_row_and_column(bad):
    frame = clicks().assign(stars=[5, 3, bad, 1])
    with pytest.raises(DataError, match=r"rating column 'stars' has 1 infinite value\(s\), the "
                                        r"first -?inf at row 2"):  # fmt: skip
        load_interactions(frame, user_col="customer", item_col="sku", rating_col="stars")


SECONDS = np.array([1_700_000_000, 1_700_086_400, 1_700_172_800, 1_700_259_200])


@pytest.mark.parametrize(("scale", "unit"), [(1, "s"), (1_000, "ms"), (1_000_000, "us"),
                                              (1_000_000_000, "ns")])  # fmt: skip
def test_time_units_are_detected(scale, unit):
    from recsys_lib.data.owndata import detect_time_unit

    assert detect_time_unit(SECONDS * scale) == unit
    data = load_interactions(clicks().assign(ts=SECONDS * scale), user_col="customer",
                             item_col="sku", time_col="ts")  # fmt: skip
    assert data.ratings["timestamp"].tolist() == SECONDS.tolist()


def test_epoch_numbers_written_as_text_and_iso_strings_are_read(tmp_path):
    path = _csv(tmp_path, "user_id,item_id,timestamp\n1,2,'x'\n".replace("'x'", "1700000000000"))
    assert load_dataset(path).ratings["timestamp"].tolist() == [1_700_000_000]
    frame = clicks().assign(ts=["1700000000", "1700086400", "1700172800", "1700259200"])
    data = load_interactions(frame, user_col="customer", item_col="sku", time_col="ts")
    assert data.ratings["timestamp"].tolist() == SECONDS.tolist()


@pytest.mark.parametrize(
    ("ts", "kwargs", "words"),
    [
        (SECONDS * [1, 1000, 1, 1], {}, "time column 'ts' mixes magnitudes"),
        ([1e30, 1, 2, 3], {}, "time column 'ts' holds 1e+30"),
        (SECONDS * 1000, {"time_unit": "s"}, "time column 'ts' could not be read as dates"),
        ([1.0, np.inf, 2.0, 3.0], {}, "time column 'ts' has 1 empty or infinite value"),
    ],
)
def test_impossible_time_units_are_refused_with_the_column_and_a_fix(ts, kwargs, words):
    with pytest.raises(DataError) as err:
        load_interactions(clicks().assign(ts=ts), user_col="customer", item_col="sku",
                          time_col="ts", **kwargs)  # fmt: skip
    assert words in str(err.value)
    assert "time_unit=" in str(err.value) or "convert it to unix seconds" in str(err.value)


def test_time_unit_option_is_checked():
    with pytest.raises(ValueError, match="time_unit must be one of"):
        load_interactions(clicks(), user_col="customer", item_col="sku", time_unit="days")


# ---------------------------------------------------------------- data of another shape
THEMES = {
    "hiking": ["trail", "boots", "summit", "map", "tent", "ridge"],
    "cooking": ["knife", "spice", "oven", "recipe", "pan", "herb"],
    "gaming": ["controller", "quest", "level", "arcade", "console", "puzzle"],
    "music": ["guitar", "chord", "vinyl", "drum", "melody", "studio"],
    "gardening": ["seed", "soil", "hose", "bloom", "compost", "shears"],
    "cycling": ["pedal", "helmet", "chain", "saddle", "gear", "tyre"],
    "photography": ["lens", "tripod", "shutter", "flash", "frame", "print"],
    "reading": ["novel", "shelf", "poem", "chapter", "lamp", "atlas"],
}
ADJECTIVES = ["compact", "classic", "bright", "sturdy", "quiet", "rugged", "light", "smart"]


def write_catalogue_dataset(
    folder: Path, n_users: int = 3000, n_items: int = 5000, seed: int = 0, timestamps: bool = True
) -> Path:
    """A shop unlike MovieLens: a Zipf-like long tail over ``n_items`` items with free-text
    descriptions and titles, ``n_users`` users (string ids, a segment and a region) who each
    favour one theme and buy 10-40 items (rated 1-5) at second resolution over a year; tags
    name the theme."""
    rng = np.random.default_rng(seed)
    names = list(THEMES)
    theme = rng.integers(0, len(names), n_items)
    popularity = 1.0 / (rng.permutation(n_items) + 10.0) ** 0.9
    rows = []
    for user in range(1, n_users + 1):
        liked = rng.integers(0, len(names))
        weights = popularity * np.where(theme == liked, 8.0, 1.0)
        chosen = rng.choice(n_items, rng.integers(10, 41), replace=False, p=weights / weights.sum())
        seconds = np.sort(rng.integers(1_704_067_200, 1_735_689_600, len(chosen)))
        for item, second in zip(chosen, seconds, strict=True):
            stars = int(rng.integers(4, 6)) if theme[item] == liked else int(rng.integers(1, 4))
            rows.append((f"u{user:05d}", int(item) + 1, stars, int(second)))
    columns = ["customer", "sku", "stars", "bought_at"]
    frame = pd.DataFrame(rows, columns=columns)
    if not timestamps:
        frame = frame.drop(columns="bought_at")
    folder.mkdir(parents=True, exist_ok=True)
    frame.rename(columns={"customer": "user_id", "sku": "item_id", "stars": "rating",
                          "bought_at": "timestamp"}).to_csv(folder / "interactions.csv", index=False)  # fmt: skip
    words = [rng.choice(THEMES[names[t]], 4, replace=False) for t in theme]
    pd.DataFrame({
        "item_id": np.arange(1, n_items + 1),
        "title": [f"{ADJECTIVES[i % 8].title()} {w[0]} no. {i + 1:05d}" for i, w in enumerate(words)],
        "description": [f"A {ADJECTIVES[(i * 3) % 8]} {w[0]} with a {w[1]} and a {w[2]}, for "
                        f"anyone who loves {names[t]} and a good {w[3]}."
                        for i, (t, w) in enumerate(zip(theme, words, strict=True))],
        "tags": [names[t] for t in theme],
    }).to_csv(folder / "items.csv", index=False)  # fmt: skip
    pd.DataFrame({
        "user_id": [f"u{user:05d}" for user in range(1, n_users + 1)],
        "segment": rng.choice(["new", "regular", "loyal"], n_users),
        "region": rng.choice(["north", "south", "east", "west"], n_users),
    }).to_csv(folder / "users.csv", index=False)  # fmt: skip
    return folder


def test_the_other_shape_loads_with_its_text_and_time(tmp_path):
    data = load_dataset(write_catalogue_dataset(tmp_path / "shop", n_users=300, n_items=500))
    assert data.has_time and data.has_text and data.ratings["user_id"].nunique() == 300
    assert data.items["description"].str.contains("anyone who loves").all()
    counts = data.ratings["item_id"].value_counts()
    assert counts.iloc[:50].sum() > 0.2 * len(data.ratings)  # a long tail: the head is heavy
    small = subsample_dataset(data, n_users=40, n_items=150, seed=42)  # what smoke mode takes
    assert small.ratings["user_id"].nunique() == 40


@pytest.fixture(scope="module")
def catalogue_shop(tmp_path_factory) -> Path:
    return write_catalogue_dataset(tmp_path_factory.mktemp("catalogue") / "shop")


#: Chapters 5-7 and 9 on the other shape (3,000 users x 5,000 items): stem -> a metric it records.
OTHER_SHAPE_CHAPTERS = {
    "05_fine_tuning": "cross_encoder_auc",
    "06_sequences_as_language": "sasrec_ndcg@10",
    "07_generative_llms": "candidate_recall",
    "09_production_and_responsibility": "unique_share_all_fields",
}


@pytest.mark.notebook
@pytest.mark.parametrize("chapter", list(OTHER_SHAPE_CHAPTERS))
def test_later_chapters_run_on_data_of_another_shape(
    chapter, catalogue_shop, tmp_path, monkeypatch
):
    """run --smoke --only CHAPTER --dataset DIR on 3,000 users, 5,000 items with free text."""
    import json

    from recsys_lib.course.notebooks import main

    monkeypatch.setenv("RECSYS_CHOICES", str(tmp_path / "choices.json"))
    build = tmp_path / "build"
    args = ["run", "--smoke", "--only", chapter, "--dataset", str(catalogue_shop),
            "--build-dir", str(build)]  # fmt: skip
    assert main(args) == 0, (build / "summary.md").read_text()
    metrics = json.loads((build / "metrics.json").read_text())[chapter]
    assert OTHER_SHAPE_CHAPTERS[chapter] in metrics
    cells = json.loads((build / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
    shown = json.dumps([c.get("outputs", []) for c in cells])
    assert "Toy Story" not in shown and "Star Wars" not in shown  # it ran on our data


def test_chapters_refuse_data_without_what_they_need(tmp_path):
    no_time = load_dataset(
        write_catalogue_dataset(tmp_path / "a", n_users=50, n_items=80, timestamps=False)
    )
    with pytest.raises(DataError, match="Chapter 6 needs a timestamp column"):
        require(no_time, "Chapter 6", "time")
    ids_only = load_dataset(write_catalogue_dataset(tmp_path / "b", n_users=50, n_items=80)
                            / "interactions.csv")  # fmt: skip
    for chapter in ("Chapter 5", "Chapter 7"):
        with pytest.raises(DataError, match=f"{chapter} needs item titles or descriptions"):
            require(ids_only, chapter, "text")
