"""One contract, every recommender: each ``models.Model`` subclass of the library and the
serving ``Recommender`` answer the same questions the same way (implicit's test habit).

Tiny synthetic data and tiny configurations keep the file fast. Discovery imports every module
of the library (:func:`pkgutil.walk_packages`), so a new ``Model`` subclass anywhere fails
:func:`test_every_model_subclass_is_in_the_contract` until it gets a factory here, even when
this file runs alone. Every learning model must also pass a known answer (a planted block
structure, :func:`test_learning_models_find_the_planted_item`), and every model with factors
must survive a save/load round trip through the serving artefact.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recsys_lib
from recsys_lib.data.interactions import Catalogue
from recsys_lib.models.base import Model, NotFittedError
from recsys_lib.runtime import seed_everything

N_USERS, N_ITEMS = 14, 16


@pytest.fixture(scope="module")
def train():
    """14 users x 16 items; item 15 is never seen (a cold item); timestamps give an order."""
    from recsys_lib.data.sequences import Sequences

    rng = np.random.default_rng(0)
    rows = []
    for user in range(N_USERS):
        items = rng.choice(N_ITEMS - 1, size=rng.integers(3, 8), replace=False)
        rows += [(user, int(i), int(rng.integers(1, 6)), t) for t, i in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    catalogue = Catalogue(np.arange(N_USERS), np.arange(N_ITEMS))
    return Sequences.from_frame(frame, catalogue)


def _factors(train, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(train.shape[0], 3)), rng.normal(size=(train.shape[1], 3))


def _popularity(train):
    from recsys_lib.models.base import Popularity

    return Popularity().fit(train)


def _svd(train):
    from recsys_lib.models.mf import PureSVD

    return PureSVD(factors=3).fit(train)


def _als(train):
    from recsys_lib.models.mf import ALS

    return ALS(factors=3, iterations=3, use_gpu=False).fit(train)


def _tiny_transformer(cls):
    def make(train):
        from recsys_lib.text.finetune import TrainConfig

        config = TrainConfig(epochs=1, batch_size=8, lr=1e-3, warmup_ratio=0.0, max_length=6,
                             eval_every=None, patience=None, device="cpu", progress=False)  # fmt: skip
        return cls(dim=8, layers=1, heads=1, dropout=0.0, config=config).fit(train)

    return make


def _factories():
    from recsys_lib.models import base as models
    from recsys_lib.models import coldstart, hybrid, mf, private, sequential

    return {
        models.Popularity: _popularity,
        models.RandomModel: lambda t: models.RandomModel(seed=3).fit(t),
        models.FactorModel: lambda t: models.FactorModel(*_factors(t)).fit(t),
        models.RandomTieBreak: lambda t: models.RandomTieBreak(_popularity(t), seed=1).fit(t),
        mf.PureSVD: _svd,
        mf.ALS: _als,
        mf.ExplicitALS: lambda t: mf.ExplicitALS(factors=3, iterations=3).fit(t),
        # one thread: implicit's multi-threaded SGD is not repeatable (found by this suite)
        mf.BPR: lambda t: mf.BPR(factors=3, iterations=5, use_gpu=False, num_threads=1).fit(t),
        mf.EASE: lambda t: mf.EASE(regularization=5.0).fit(t),
        hybrid.HybridModel: lambda t: hybrid.HybridModel(
            {"pop": _popularity(t), "svd": _svd(t)}, {"pop": 0.5, "svd": 1.0}
        ).fit(t),
        hybrid.LearnedBlend: lambda t: hybrid.LearnedBlend(
            {"pop": _popularity(t), "svd": _svd(t)}
        ).fit(t),
        coldstart.TextToFactors: lambda t: coldstart.TextToFactors(
            _als(t), np.random.default_rng(2).normal(size=(t.shape[1], 5))
        ).fit(t),
        private.DPPopularity: lambda t: private.DPPopularity(epsilon=1.0, seed=4).fit(t),
        sequential.Transition: lambda t: sequential.Transition().fit(t),
        sequential.SASRec: _tiny_transformer(sequential.SASRec),
        sequential.BERT4Rec: _tiny_transformer(sequential.BERT4Rec),
    }


FACTORY_NAMES = [
    "Popularity", "RandomModel", "FactorModel", "RandomTieBreak", "PureSVD", "ALS",
    "ExplicitALS", "BPR", "EASE", "HybridModel", "LearnedBlend", "TextToFactors",
    "DPPopularity", "Transition", "SASRec", "BERT4Rec",
]  # fmt: skip


def _concrete_subclasses(cls):
    for sub in cls.__subclasses__():
        if not getattr(sub, "__abstractmethods__", None) and not sub.__name__.startswith("_"):
            yield sub
        yield from _concrete_subclasses(sub)


def _import_every_module() -> list[str]:
    """Import every module of recsys_lib (command-line ``__main__`` modules excepted); return
    the names that could not be imported because an optional dependency is missing."""
    missing = []
    for info in pkgutil.walk_packages(recsys_lib.__path__, prefix="recsys_lib."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # importing it would run a command line
        try:
            importlib.import_module(info.name)
        except ImportError:  # an optional dependency is missing: its models cannot run anyway
            missing.append(info.name)
    return missing


def test_discovery_reaches_every_module():
    missing = _import_every_module()
    import sys

    files = {
        ".".join(path.relative_to(Path(recsys_lib.__file__).parent.parent).with_suffix("").parts)
        for path in Path(recsys_lib.__file__).parent.rglob("*.py")
    }
    modules = {name.removesuffix(".__init__") for name in files if not name.endswith("__main__")}
    modules -= set(missing)
    assert modules <= set(sys.modules), f"not imported: {sorted(modules - set(sys.modules))}"


def test_every_model_subclass_is_in_the_contract():
    _import_every_module()
    library = {c for c in _concrete_subclasses(Model) if c.__module__.startswith("recsys_lib.")}
    covered = set(_factories())
    assert library <= covered, f"add a factory for {sorted(c.__name__ for c in library - covered)}"
    assert sorted(c.__name__ for c in covered) == sorted(FACTORY_NAMES)


@pytest.fixture(scope="module", params=FACTORY_NAMES)
def fitted(request, train):
    factory = {c.__name__: f for c, f in _factories().items()}[request.param]
    return factory, factory(train)


def _brute_force(scores, k):
    """Top-k by (score desc, column asc), -inf never chosen: the documented tie rule."""
    out = np.full((len(scores), min(k, scores.shape[1])), -1, dtype=np.int64)
    for r, row in enumerate(scores):
        order = [c for c in np.lexsort((np.arange(len(row)), -row)) if np.isfinite(row[c])]
        out[r, : min(k, len(order))] = order[:k]
    return out


def test_fit_returns_self_and_score_has_the_catalogue_shape(fitted, train):
    _, model = fitted
    assert model.train_ is train
    scores = model.score()
    # float32, except RandomTieBreak: its tie-breaking jitter lies below float32 resolution.
    dtype = np.float64 if type(model).__name__ == "RandomTieBreak" else np.float32
    assert scores.shape == train.shape and scores.dtype == dtype
    assert model.score([3, 0]).shape == (2, train.shape[1])
    # The same user scores alike in any batch (to float32 rounding: BLAS may sum in another
    # order for another batch shape).
    assert np.allclose(model.score([3, 0])[1], scores[0], rtol=1e-6, atol=1e-6)


def test_recommend_shape_order_and_seen_exclusion(fitted, train):
    _, model = fitted
    rec = model.recommend(None, k=5)
    assert rec.shape == (train.shape[0], 5) and rec.dtype == np.int64
    seen = train.matrix.toarray() > 0
    assert not seen[np.arange(len(rec))[:, None], rec].any()
    masked = model.score().astype(np.float64)
    masked[seen] = -np.inf
    assert np.array_equal(rec, _brute_force(masked, 5))  # best first, ties to the lower column
    kept = model.recommend([0], k=train.shape[1], exclude_seen=False)
    assert set(kept[0].tolist()) == set(range(train.shape[1]))


def test_candidates_restrict_the_ranking(fitted, train):
    _, model = fitted
    candidates = np.array([1, 4, 9, 15])
    rec = model.recommend(None, k=3, candidates=candidates)
    valid = rec[rec >= 0]
    assert np.isin(valid, candidates).all()
    seen = train.matrix.toarray() > 0
    assert not seen[np.nonzero(rec >= 0)[0], valid].any()


def test_k_bounds(fitted, train):
    _, model = fitted
    wide = model.recommend([0, 1], k=train.shape[1] + 5)
    assert wide.shape == (2, train.shape[1])  # k > n_items: every item, padded with -1
    n_unseen = train.shape[1] - np.diff(train.matrix.indptr)[[0, 1]]
    assert ((wide >= 0).sum(1) == n_unseen).all()
    for bad in (0, -1):
        with pytest.raises(ValueError, match="k must be"):
            model.recommend([0], k=bad)
    with pytest.raises(TypeError, match="k must be an integer"):
        model.recommend([0], k=2.5)


def test_unknown_users_are_a_clear_error(fitted, train):
    _, model = fitted
    for bad in ([train.shape[0]], [-1]):
        with pytest.raises(IndexError, match="out of range"):
            model.recommend(bad, k=2)
        with pytest.raises(IndexError, match="out of range"):
            model.score(bad)
    with pytest.raises(KeyError, match="not in the catalogue"):
        model.recommend_frame([999], k=2)
    frame = model.recommend_frame([2, 5], k=3)
    assert list(frame.columns) == ["user_id", "rank", "item_id"] and len(frame) == 6


def test_same_seed_same_model(fitted, train):
    factory, model = fitted
    again = factory(train)
    assert np.allclose(again.score(), model.score(), rtol=1e-5, atol=1e-6)
    assert np.array_equal(again.recommend(None, k=4), model.recommend(None, k=4))


def test_unfitted_model_says_so():
    from recsys_lib.models.base import Popularity

    with pytest.raises(NotFittedError, match="fit"):
        Popularity().recommend([0])


# ------------------------------------------------------------------ a known answer
# Models that do not learn who likes what: constant or random scores, given factors, a wrapper.
NOT_LEARNING = {"Popularity", "RandomModel", "FactorModel", "RandomTieBreak", "DPPopularity"}
BLOCKS = (6, 5, 10)  # block A: users 0-5 x items 0-4; block B: users 6-15 x items 5-9
HELD_OUT = {0: 0, 6: 5}  # user row -> the item of its own block it has not seen


@pytest.fixture(scope="module")
def blocks():
    """Two blocks of users, each interacting with every item of its own block only, in a
    cyclic order (user u reads its block's items starting at u), minus one held-out item for
    one user of each block; block B has more users, so popularity prefers its items."""
    from recsys_lib.data.sequences import Sequences

    n_a, n_items_block, n_b = BLOCKS
    rows = []
    for user in range(n_a + n_b):
        first = 0 if user < n_a else n_items_block
        for t in range(n_items_block):
            item = first + (user + t) % n_items_block
            if HELD_OUT.get(user) != item:
                rows.append((user, item, 5, t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    catalogue = Catalogue(np.arange(n_a + n_b), np.arange(2 * n_items_block))
    return Sequences.from_frame(frame, catalogue)


def _known_answer_factories():
    """The contract's factories, with enough training for the tiny models to learn blocks."""
    from recsys_lib.models import mf, sequential
    from recsys_lib.text.finetune import TrainConfig

    def transformer(cls):
        def make(train):
            config = TrainConfig(epochs=60, batch_size=16, lr=1e-2, warmup_ratio=0.0,
                                 max_length=6, eval_every=None, patience=None, device="cpu",
                                 progress=False)  # fmt: skip
            return cls(dim=16, layers=1, heads=1, dropout=0.0, config=config).fit(train)

        return make

    stronger = {
        # its weights are learned on data: here the training interactions themselves (a blend
        # with equal weights lets popularity's z-scores outvote the collaborative component)
        "LearnedBlend": lambda t: _factories_by_name()["LearnedBlend"](t).learn(t, seed=0),
        "BPR": lambda t: mf.BPR(
            factors=4, learning_rate=0.05, iterations=200, use_gpu=False, num_threads=1
        ).fit(t),  # fmt: skip
        "SASRec": transformer(sequential.SASRec),
        "BERT4Rec": transformer(sequential.BERT4Rec),
    }
    factories = {c.__name__: f for c, f in _factories().items()}
    return {name: stronger.get(name, factory) for name, factory in factories.items()}


def _finds_held_out(model) -> bool:
    top = model.recommend(list(HELD_OUT), k=1)[:, 0]
    return top.tolist() == list(HELD_OUT.values())


@pytest.mark.parametrize("name", sorted(set(FACTORY_NAMES) - NOT_LEARNING))
def test_learning_models_find_the_planted_item(name, blocks):
    seed_everything(0)
    model = _known_answer_factories()[name](blocks)
    scores = model.score(list(HELD_OUT))
    assert _finds_held_out(model), (
        f"{name} ranks {model.recommend(list(HELD_OUT), k=3).tolist()} first, not the held-out "
        f"items {list(HELD_OUT.values())}; scores {np.round(scores, 3).tolist()}"
    )


def test_the_known_answer_is_not_popularity(blocks):
    from recsys_lib.models.base import Popularity

    assert not _finds_held_out(Popularity().fit(blocks))  # the check can fail


# ------------------------------------------------------------------ save and load
@pytest.fixture(scope="module", params=FACTORY_NAMES)
def any_model(request, train):
    return _factories_by_name()[request.param](train)


def _factories_by_name():
    return {c.__name__: f for c, f in _factories().items()}


def test_every_model_with_factors_survives_save_and_load(any_model, train, tmp_path):
    from recsys_lib.production.serving import Recommender

    if any_model.user_factors is None or any_model.item_factors is None:
        with pytest.raises(ValueError, match="no user_factors/item_factors"):
            Recommender.from_model(any_model, train)
        return
    served = Recommender.from_model(any_model, train)
    loaded = Recommender.load(served.save(tmp_path / "artefact"))
    np.testing.assert_array_equal(loaded.user_factors, any_model.user_factors.astype(np.float32))
    np.testing.assert_array_equal(loaded.item_factors, any_model.item_factors.astype(np.float32))
    users = train.catalogue.user_ids
    expected = served.recommend_many(users, k=5)
    np.testing.assert_array_equal(loaded.recommend_many(users, k=5), expected)
    scores = any_model.score().astype(np.float64)
    scores[train.matrix.toarray() > 0] = -np.inf
    columns = train.catalogue.item_index(expected.ravel()).reshape(expected.shape)
    best = np.sort(scores, axis=1)[:, ::-1][:, :5]
    np.testing.assert_allclose(np.take_along_axis(scores, columns, 1), best, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ the serving Recommender
@pytest.fixture(scope="module")
def served(train):
    from recsys_lib.models.base import FactorModel
    from recsys_lib.production.serving import Recommender

    users, items = _factors(train)
    items[[2, 7, 11]] = items[4]  # exact ties: items 2, 4, 7, 11 score alike for everyone
    model = FactorModel(users, items).fit(train)
    ids = Catalogue(train.catalogue.user_ids + 100, train.catalogue.item_ids + 500)
    return model, Recommender(ids.user_ids, ids.item_ids, users, items, train.matrix)


def test_recommender_matches_the_model_contract(served, train):
    model, rec = served
    cols = model.recommend(None, k=6)
    for row in range(train.shape[0]):
        assert np.array_equal(rec.recommend(100 + row, k=6), cols[row] + 500)
    many = rec.recommend_many(np.arange(train.shape[0]) + 100, k=6)
    assert np.array_equal(many, cols + 500)


def test_recommender_ties_seen_items_and_history(served, train):
    _, rec = served
    for user in range(train.shape[0]):
        out = rec.recommend(100 + user, k=train.shape[1])
        assert not np.isin(out, rec.history(100 + user)).any()
        tied = [i for i in out if i in (502, 504, 507, 511)]
        assert tied == sorted(tied)  # equal scores: lower column (here lower id) first


def test_recommender_k_bounds_and_unknown_ids(served, train):
    from recsys_lib.production.serving import UnknownIdError

    _, rec = served
    for bad in (0, -3, train.shape[1] + 1):
        with pytest.raises(ValueError, match="k must be an integer between 1 and"):
            rec.recommend(100, k=bad)
    with pytest.raises(TypeError, match="k must be an integer"):
        rec.recommend(100, k=2.0)
    with pytest.raises(UnknownIdError, match="user id 7 not in the training catalogue"):
        rec.recommend(7)
    with pytest.raises(UnknownIdError, match="item id 3 not in the training catalogue"):
        rec.similar_items(3)
    assert np.array_equal(rec.recommend(101, k=3), rec.recommend(101, k=3))


# ------------------------------------------------------------------ parameter validation
def _valid_arguments(cls, train):
    """The smallest valid constructor arguments of each model class (required ones only)."""
    from recsys_lib.models.base import Popularity

    pop = Popularity()
    return {
        "FactorModel": dict(zip(("user_factors", "item_factors"), _factors(train), strict=True)),
        "RandomTieBreak": {"base": pop},
        "HybridModel": {"components": {"pop": pop}, "weights": {"pop": 1.0}},
        "LearnedBlend": {"components": {"pop": pop}},
        "TextToFactors": {"base": pop, "item_text": np.zeros((train.shape[1], 2))},
        "DPPopularity": {"epsilon": 1.0},
    }.get(cls.__name__, {})


def _declared(cls):
    """Every parameter constraint declared on the class's constructors (its own and bases')."""
    out = {}
    for klass in reversed(cls.__mro__):
        out.update(getattr(klass.__dict__.get("__init__"), "parameter_constraints", {}))
    accepted = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        return out  # forwarded to the base constructor
    return {name: spec for name, spec in out.items() if name in accepted}


DECLARED = [
    (name, param)
    for name in FACTORY_NAMES
    for param in (
        _declared({c.__name__: c for c in _factories()}[name]) or {"<no parameters>": None}
    )
]


def test_every_model_with_constructor_parameters_declares_them():
    for cls in _factories():
        own = []
        for klass in cls.__mro__:  # the constructor, and its base's where it forwards **kwargs
            if "__init__" not in klass.__dict__:
                continue
            params = inspect.signature(klass.__dict__["__init__"]).parameters
            own += [n for n, p in params.items() if n != "self" and p.kind != p.VAR_KEYWORD]
            if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
                break
        missing = set(own) - set(_declared(cls))
        assert not missing, f"{cls.__name__} declares no constraint for {sorted(missing)}"


@pytest.mark.parametrize(("name", "param"), DECLARED)
def test_an_invalid_value_of_each_declared_parameter_is_named(name, param, train):
    from recsys_lib.validation import InvalidParameterError, invalid_example

    cls = {c.__name__: c for c in _factories()}[name]
    if param == "<no parameters>":
        cls()  # nothing to validate
        return
    arguments = _valid_arguments(cls, train)
    cls(**arguments)  # the valid call works
    bad = invalid_example(_declared(cls)[param])
    with pytest.raises(InvalidParameterError, match=rf"\b{param} must be") as info:
        cls(**{**arguments, param: bad})
    assert cls.__name__ in str(info.value)


@pytest.mark.parametrize("name", ["Popularity", "ALS", "EASE", "PureSVD", "Transition"])
def test_fit_refuses_an_empty_matrix(name):
    import scipy.sparse as sp

    from recsys_lib.data.interactions import Interactions
    from recsys_lib.data.sequences import Sequences

    cls = {c.__name__: c for c in _factories()}[name]
    catalogue = Catalogue(np.arange(3), np.arange(4))
    empty = Interactions(sp.csr_matrix((3, 4), dtype=np.float32), catalogue)
    if name == "Transition":
        empty = Sequences.from_frame(
            pd.DataFrame({"user_id": [], "item_id": [], "timestamp": []}), catalogue
        )
    model = cls(factors=2) if name in ("ALS", "PureSVD") else cls()
    with pytest.raises(ValueError, match="no interactions"):
        model.fit(empty)
