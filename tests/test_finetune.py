"""Pairs, losses and the two fine-tuning loops, on tiny random BERT models (fast)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from recsys_lib.data.interactions import shared_interactions  # noqa: E402
from recsys_lib.evaluation.metrics import roc_auc  # noqa: E402
from recsys_lib.text import finetune as ft  # noqa: E402
from recsys_lib.text import pairs as pr  # noqa: E402

# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tokenizer():
    return ft.load_tokenizer()


def tiny_config(**kw):
    from transformers import BertConfig

    base = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)  # fmt: skip
    base.update(kw)
    return BertConfig(**base)


def tiny_encoder(seed=0):
    from transformers import BertModel

    torch.manual_seed(seed)
    return BertModel(tiny_config())


def tiny_classifier(seed=0):
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    return BertForSequenceClassification(
        tiny_config(num_labels=2, id2label=ft.ID2LABEL, label2id=ft.LABEL2ID, initializer_range=0.2)
    )


@pytest.fixture
def log():
    """Train/test ratings of 4 users on 6 items."""
    train = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 3, 3, 4],
            "item_id": [10, 11, 12, 10, 13, 14, 15, 10],
            "rating": [5, 2, 4, 3, 5, 4, 1, 5],
        }  # fmt: skip
    )
    test = pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": [13, 14, 10, 11], "rating": 4})
    return train, test


ITEMS = np.array([10, 11, 12, 13, 14, 15])
USER_TEXT = pd.Series({1: "loves westerns", 2: "likes comedy", 3: "horror fan", 4: "drama only"})
ITEM_TEXT = pd.Series({10: "a western", 11: "a comedy", 12: "a horror film", 13: "a drama",
                       14: "a musical", 15: "a war film"})  # fmt: skip


# ------------------------------------------------------------------------------- sampling


def test_positives_click_and_conversion(log):
    train, _ = log
    clicks = pr.positives(train, pr.CLICK_MIN_RATING)
    conversions = pr.positives(train, pr.CONVERSION_MIN_RATING)
    assert len(clicks) == 8 and (clicks["label"] == 1).all()
    assert set(map(tuple, conversions[["user_id", "item_id"]].to_numpy())) == {
        (1, 10), (1, 12), (2, 13), (3, 14), (4, 10)
    }  # fmt: skip


@pytest.mark.parametrize("how", ["uniform", "popularity"])
@pytest.mark.parametrize("ratio", [1, 3])
def test_negatives_avoid_known_and_respect_ratio(log, how, ratio):
    train, _ = log
    weights = pr.popularity_weights(train, ITEMS)
    pairs = pr.build_pairs(train, train, ITEMS, ratio=ratio, how=how, weights=weights, seed=1)
    neg = pairs[pairs["label"] == 0]
    seen = set(map(tuple, train[["user_id", "item_id"]].to_numpy()))
    assert not seen & set(map(tuple, neg[["user_id", "item_id"]].to_numpy()))
    assert set(neg["item_id"]) <= set(ITEMS)
    per_user_pos = pairs[pairs["label"] == 1].groupby("user_id").size()
    per_user_neg = neg.groupby("user_id").size()
    pd.testing.assert_series_equal(per_user_neg, per_user_pos * ratio, check_names=False)


def test_training_pairs_do_not_depend_on_test_and_heldout_negatives_avoid_both(log):
    train, test = log
    a = pr.build_pairs(train, train, ITEMS, ratio=2, seed=3)
    b = pr.build_pairs(train, train, ITEMS, ratio=2, seed=3)
    pd.testing.assert_frame_equal(a, b)  # deterministic, and test was never an input
    assert set(map(tuple, a.loc[a["label"] == 1, ["user_id", "item_id"]].to_numpy())) <= set(
        map(tuple, train[["user_id", "item_id"]].to_numpy())
    )
    known = pd.concat([train, test])
    held = pr.build_pairs(test, known, ITEMS, ratio=3, seed=3)
    neg = set(map(tuple, held.loc[held["label"] == 0, ["user_id", "item_id"]].to_numpy()))
    assert not neg & set(map(tuple, known[["user_id", "item_id"]].to_numpy()))
    assert set(map(tuple, held.loc[held["label"] == 1, ["user_id", "item_id"]].to_numpy())) == set(
        map(tuple, test[["user_id", "item_id"]].to_numpy())
    )


def test_popularity_sampling_follows_weights():
    known = pd.DataFrame({"user_id": [1], "item_id": [0]})  # item 0 is excluded for user 1
    pos = pd.DataFrame({"user_id": np.ones(20000, dtype=int)})
    items = np.arange(4)
    weights = np.array([0.4, 0.1, 0.2, 0.3])
    neg = pr.sample_negatives(pos, known, items, how="popularity", weights=weights, seed=0)
    share = neg["item_id"].value_counts(normalize=True).reindex(items, fill_value=0).to_numpy()
    np.testing.assert_allclose(share, [0, 1 / 6, 2 / 6, 3 / 6], atol=0.015)


def test_popularity_weights_and_sampling_errors(log):
    train, _ = log
    w = pr.popularity_weights(train, ITEMS, power=1.0, smoothing=1.0)
    np.testing.assert_allclose(w, np.array([4, 2, 2, 2, 2, 2]) / 14)
    with pytest.raises(ValueError, match="ratio"):
        pr.sample_negatives(train, train, ITEMS, ratio=0)
    with pytest.raises(ValueError, match="weights"):
        pr.sample_negatives(train, train, ITEMS, how="popularity")
    everything = pd.DataFrame({"user_id": 9, "item_id": ITEMS})
    with pytest.raises(ValueError, match="no negatives"):
        pr.sample_negatives(everything, everything, ITEMS)

    # items 10 and 11 have weight 0 and item 12 is known: user 9 could never get a negative
    known = pd.DataFrame({"user_id": [9], "item_id": [12]})
    zero = np.array([0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"\[9\] have weight 0"):
        pr.sample_negatives(known, known, np.array([10, 11, 12]), how="popularity", weights=zero)
    neg = pr.sample_negatives(known, known, np.array([10, 11, 12]), how="popularity",
                              weights=np.array([0.0, 1.0, 1.0]), seed=0)  # fmt: skip
    assert neg["item_id"].tolist() == [11]  # the one allowed item with weight
    with pytest.raises(ValueError, match="non-negative"):
        pr.sample_negatives(known, known, np.array([10, 11, 12]), how="popularity",
                            weights=np.array([-1.0, 1.0, 1.0]))  # fmt: skip


# ------------------------------------------------------------------ metrics and baseline


def test_percentile_popularity_words_are_ordered():
    counts = pd.DataFrame({"item_id": np.repeat(np.arange(100), np.arange(100) + 1)})
    words = pr.popularity_labels(counts, np.arange(100), pr.PERCENTILE_CUTS, pr.PERCENTILE_WORDS)
    assert words.iloc[0] == "in the bottom fifth" and words.iloc[-1] == "in the top 2%"
    level = words.map({w: i for i, w in enumerate(pr.PERCENTILE_WORDS)}).to_numpy()
    assert (np.diff(level) >= 0).all() and len(set(level)) == len(pr.PERCENTILE_WORDS)


def test_pair_features_by_hand(log):
    train, _ = log
    items = pd.DataFrame({"item_id": ITEMS, "genres": [["A"], ["B"], ["A", "B"], ["C"], ["A"], []]})
    pairs = pd.DataFrame({"user_id": [1, 3], "item_id": [12, 13]})
    x = pr.pair_features(pairs, train, items)
    # user 1 genre counts (A, B, C) = (2, 2, 0); item 12 = (1, 1, 0) -> cosine 1
    # user 3: items 14 (A) and 15 (no genre) -> (1, 0, 0); item 13 = C -> cosine 0
    np.testing.assert_allclose(x[:, 1], [1.0, 0.0])
    np.testing.assert_allclose(x[:, 0], np.log1p([1, 1]))
    np.testing.assert_allclose(x[:, 2], np.log1p([3, 2]))


def test_logistic_baseline_is_optimal_and_separates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=400) > 0).astype(float)
    model = pr.LogisticBaseline(l2=1e-2).fit(x, y)
    z = np.column_stack([np.ones(400), (x - model.mean_) / model.std_])
    w = np.r_[model.intercept_, model.coef_]
    p = 1 / (1 + np.exp(-(z @ w)))
    grad = z.T @ (p - y) + np.r_[0.0, 1e-2 * 400 * model.coef_]
    assert np.abs(grad).max() < 1e-6  # Newton converged to the penalised optimum
    assert model.coef_[0] > 0 > model.coef_[1]
    assert roc_auc(y, model.predict_proba(x)) > 0.95


def _fusion_data(n, rng, sign=1.0):
    """Pairs whose label depends weakly on a feature and strongly on a text score."""
    x = rng.normal(size=(n, 2))
    hidden = rng.normal(size=n)
    y = (0.3 * x[:, 0] + sign * hidden + 0.3 * rng.normal(size=n) > 0).astype(float)
    return x, 1 / (1 + np.exp(-2 * hidden)), y


def test_fusion_uses_the_planted_score():
    rng = np.random.default_rng(1)
    (xv, pv, yv), (xt, pt, yt) = _fusion_data(600, rng), _fusion_data(600, rng)
    base = pr.LogisticBaseline().fit(xv, yv).predict_proba(xt)
    fused = pr.fit_fusion(xv, pv, yv).predict_proba(pr.with_score(xt, pt))
    assert roc_auc(yt, fused) > roc_auc(yt, base) + 0.2  # an informative score must raise AUC


def test_fusion_is_fitted_on_validation_only():
    rng = np.random.default_rng(2)
    xv, pv, yv = _fusion_data(600, rng, sign=1.0)
    xt, pt, yt = _fusion_data(600, rng, sign=-1.0)  # on test the score's sign is reversed
    xt = xt + 5.0  # and the features are shifted
    fusion = pr.fit_fusion(xv, pv, yv)
    np.testing.assert_allclose(fusion.mean_[:2], xv.mean(0))  # standardised with validation
    # weights learnt on validation keep the validation sign: fitted on test, AUC would be high
    assert roc_auc(yt, fusion.predict_proba(pr.with_score(xt, pt))) < 0.3


def test_with_score_logit_and_errors():
    x = np.zeros((3, 1))
    got = pr.with_score(x, np.array([0.5, 0.0, 1.0]))
    assert got.shape == (3, 2) and got[0, 1] == 0.0
    assert got[1, 1] < -10 < 10 < got[2, 1]  # clipped, finite
    with pytest.raises(ValueError, match="one probability per row"):
        pr.with_score(x, np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pr.with_score(x, np.array([0.5, 2.0, np.nan]))


# ------------------------------------------------------------------------------- losses


def test_multiple_negatives_loss_by_hand():
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    t = 0.5
    # logits / t: row0 = [2, 1.2], row1 = [0, 1.6]
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(1.2)))
    row1 = -math.log(math.exp(1.6) / (1 + math.exp(1.6)))
    got = ft.multiple_negatives_loss(u, v, temperature=t)
    assert got.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    # masking item 1 out of user 0's negatives leaves a single candidate: loss 0 for that row
    mask = torch.tensor([[False, True], [False, False]])
    got = ft.multiple_negatives_loss(u, v, temperature=t, mask=mask)
    assert got.item() == pytest.approx(row1 / 2, rel=1e-6)
    col0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(0)))
    col1 = -math.log(math.exp(1.6) / (math.exp(1.2) + math.exp(1.6)))
    sym = ft.multiple_negatives_loss(u, v, temperature=t, symmetric=True)
    assert sym.item() == pytest.approx(((row0 + row1) / 2 + (col0 + col1) / 2) / 2, rel=1e-6)


def test_linear_warmup_factor():
    values = [ft.linear_warmup_factor(s, total_steps=10, warmup_steps=4) for s in range(10)]
    np.testing.assert_allclose(values[:4], [0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(values[4:], [1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])


def test_source_article_argmax_bug():
    logits = torch.tensor([[0.2, 1.5], [2.0, -1.0]])  # (batch, num_labels): 2-D
    with pytest.raises(IndexError):
        logits.argmax(dim=2)
    assert logits.argmax(dim=-1).tolist() == [1, 0]


# ---------------------------------------------------------------------- freezing and batches


def test_freeze_lower_layers_counts():
    model = tiny_classifier()
    report = ft.freeze_lower_layers(model, 1)
    layer = sum(p.numel() for p in model.bert.encoder.layer[0].parameters())
    head = sum(p.numel() for p in model.bert.pooler.parameters()) + sum(
        p.numel() for p in model.classifier.parameters()
    )
    assert report["trainable"] == layer + head
    assert report["share"] == pytest.approx(report["trainable"] / report["total"])
    assert not any(p.requires_grad for p in model.bert.embeddings.parameters())
    assert ft.freeze_lower_layers(model, None)["share"] == 1.0
    with pytest.raises(ValueError, match="between 0 and 3"):
        ft.freeze_lower_layers(model, 4)


def test_user_unique_batches_and_mask():
    users = np.array([0, 0, 1, 2, 2, 2, 3])
    items = np.array([5, 6, 5, 7, 8, 9, 6])
    batches = list(ft.user_unique_batches(users, items, 3, np.random.default_rng(0)))
    seen = np.concatenate([u for u, _ in batches])
    assert sorted(seen.tolist()) == [0, 1, 2, 3] or len(seen) == 3  # a lone last user is dropped
    pos = set(zip(users.tolist(), items.tolist(), strict=True))
    for u, i in batches:
        assert len(set(u.tolist())) == len(u)
        assert all((a, b) in pos for a, b in zip(u.tolist(), i.tolist(), strict=True))
    keys = np.unique(users * 10 + items)
    mask = ft.in_batch_positive_mask(np.array([0, 1]), np.array([6, 5]), keys, 10)
    # user 0 also has item 5 (user 1's positive): masked; user 1 does not have item 6
    assert mask.tolist() == [[False, True], [False, False]]


# ----------------------------------------------------------------------------- training


def test_cross_encoder_two_steps_lower_loss_and_round_trip(tokenizer, tmp_path):
    pairs = pd.DataFrame({"user_id": [1, 2, 3, 4, 1, 2, 3, 4],
                          "item_id": [10, 11, 12, 13, 14, 15, 10, 11],
                          "label": [1, 1, 1, 1, 0, 0, 0, 0]})  # fmt: skip
    model = tiny_classifier()

    def batch_loss():
        model.eval()
        users, items = ft.pair_texts(pairs, USER_TEXT, ITEM_TEXT)
        enc = ft.tokenize_pairs(tokenizer, users, items, 32)
        with torch.no_grad():
            return model(**enc, labels=torch.tensor(pairs["label"].to_numpy())).loss.item()

    before = batch_loss()
    cfg = ft.TrainConfig(epochs=2, batch_size=8, lr=1e-3, warmup_ratio=0.0, max_length=32,
                         device="cpu", progress=False, patience=None)  # fmt: skip
    hist = ft.train_cross_encoder(model, tokenizer, pairs, USER_TEXT, ITEM_TEXT, cfg)
    assert hist.steps == [1, 2] and hist.examples == 16
    assert batch_loss() < before

    probs = ft.predict_click_proba(model, tokenizer, pairs, USER_TEXT, ITEM_TEXT, device="cpu")
    one = ft.predict_click_proba(model, tokenizer, pairs.iloc[[5]], USER_TEXT, ITEM_TEXT,
                                 device="cpu")  # fmt: skip
    assert probs.shape == (8,) and ((probs > 0) & (probs < 1)).all()
    assert one[0] == pytest.approx(probs[5], abs=1e-5)  # input order is kept

    folder = ft.save_model(model, tokenizer, tmp_path / "ce")
    assert (folder / "model.safetensors").is_file()
    loaded = ft.load_cross_encoder(str(folder))
    assert loaded.config.id2label == ft.ID2LABEL
    again = ft.predict_click_proba(loaded, tokenizer, pairs, USER_TEXT, ITEM_TEXT, device="cpu")
    np.testing.assert_allclose(again, probs, atol=1e-6)


def test_gradient_accumulation_and_early_stopping(tokenizer):
    pairs = pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": [10, 11, 12, 13],
                          "label": [1, 0, 1, 0]})  # fmt: skip
    cfg = ft.TrainConfig(epochs=1, batch_size=1, grad_accum=2, max_length=32, device="cpu",
                         progress=False)  # fmt: skip
    hist = ft.train_cross_encoder(tiny_classifier(), tokenizer, pairs, USER_TEXT, ITEM_TEXT, cfg)
    assert hist.steps == [1, 2] and hist.examples == 4 and hist.evals == []
    # fewer batches per epoch than grad_accum (or none): a clear error, not an endless loop
    for few, message in ((pairs.iloc[:1], "1 batch.*grad_accum=2"), (pairs.iloc[:0], "empty")):
        with pytest.raises(ValueError, match=message):
            ft.train_cross_encoder(tiny_classifier(), tokenizer, few, USER_TEXT, ITEM_TEXT, cfg)
    # validation every update; a model that cannot improve (lr 0) stops after `patience` evals
    cfg = ft.TrainConfig(epochs=50, batch_size=4, lr=0.0, eval_every=1, patience=2,
                         max_length=32, device="cpu", progress=False)  # fmt: skip
    model = tiny_classifier()
    start = ft.copy_state(model)
    hist = ft.train_cross_encoder(model, tokenizer, pairs, USER_TEXT, ITEM_TEXT, cfg,
                                  val_pairs=pairs, monitor="log_loss")  # fmt: skip
    assert hist.stopped_early and hist.steps == [1, 2] and hist.best_step == 0
    assert [e["step"] for e in hist.evals] == list(range(len(hist.evals)))
    best = min(hist.evals, key=lambda e: e["log_loss"])
    assert hist.best_step == best["step"] and hist.best_score == best["log_loss"]
    if hist.best_step == 0:  # the starting weights were best: they are restored
        for name, value in ft.copy_state(model).items():
            assert torch.equal(value, start[name]), name


@pytest.mark.parametrize("n_trainable", [1, None])
def test_two_tower_cache_matches_full_forward(tokenizer, n_trainable):
    tower = ft.TwoTower(tiny_encoder(), tokenizer, n_trainable=n_trainable, max_length=16,
                        device="cpu")  # fmt: skip
    texts = ITEM_TEXT.tolist()
    full = tower.encode(texts)
    tower.cache("items", texts)
    tower.encoder.eval()
    with torch.no_grad():
        cached = tower.embed_batch(name="items", rows=[4, 0, 2]).numpy()
    np.testing.assert_allclose(cached, full[[4, 0, 2]], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-5)


def test_two_tower_training_lowers_loss_is_deterministic_and_ranks(tokenizer, log):
    train, test = log
    pos = pr.positives(train)
    cfg = ft.TrainConfig(epochs=2, batch_size=4, lr=5e-3, warmup_ratio=0.0, max_length=16,
                         device="cpu", progress=False, patience=None)  # fmt: skip

    def run():
        tower = ft.TwoTower(tiny_encoder(), tokenizer, n_trainable=1, max_length=16, device="cpu")
        hist = ft.train_two_tower(tower, pos, USER_TEXT, ITEM_TEXT, cfg, temperature=0.1)
        return tower, hist

    (tower, hist), (tower2, hist2) = run(), run()
    assert hist.loss == hist2.loss  # same seed, same run on CPU
    first = ft.copy_state(tower.encoder)
    for name, value in ft.copy_state(tower2.encoder).items():
        assert torch.equal(value, first[name]), name
    assert hist.steps == [1, 2]
    # the loss of the same fixed batch goes down
    tower3 = ft.TwoTower(tiny_encoder(), tokenizer, n_trainable=1, max_length=16, device="cpu")
    users, items = np.array([0, 1, 2, 3]), np.array([0, 3, 4, 0])  # codes into the texts

    def fixed_loss():
        tower3.encoder.eval()
        with torch.no_grad():
            u = tower3.embed_batch([USER_TEXT.iloc[r] for r in users])
            v = tower3.embed_batch([ITEM_TEXT.iloc[r] for r in items])
            return ft.multiple_negatives_loss(u, v, 0.1).item()

    before = fixed_loss()
    fixed = pd.DataFrame({"user_id": USER_TEXT.index[users], "item_id": ITEM_TEXT.index[items]})
    ft.train_two_tower(tower3, fixed, USER_TEXT, ITEM_TEXT, cfg, temperature=0.1)
    assert fixed_loss() < before

    tr, te = shared_interactions(train, test)
    metrics = ft.ranking_metrics(tower, USER_TEXT, ITEM_TEXT, tr, te, k=3)
    assert 0.0 <= metrics["ndcg@10" if "ndcg@10" in metrics else "ndcg@3"] <= 1.0
    users_f, items_f = ft.text_factors(tower, USER_TEXT, ITEM_TEXT, tr.catalogue)
    np.testing.assert_allclose(items_f, tower.encode(ITEM_TEXT.loc[tr.catalogue.item_ids].tolist()))
    assert users_f.shape == (4, 32)


def test_two_tower_needs_trainable_parameters(tokenizer):
    tower = ft.TwoTower(tiny_encoder(), tokenizer, n_trainable=0, max_length=16, device="cpu")
    assert tower.params["trainable"] == 0
    with pytest.raises(ValueError, match="no trainable parameters"):
        ft.train_two_tower(
            tower,
            pd.DataFrame({"user_id": [1, 2], "item_id": [10, 11]}),
            USER_TEXT,
            ITEM_TEXT,
            ft.TrainConfig(progress=False, device="cpu"),
        )


def test_popularity_labels_and_subsample(log):
    train, _ = log
    words = pr.popularity_labels(train, ITEMS, cuts=(0.5,), words=("niche", "popular"))
    # counts 10:3, 11-15:1 -> item 10 ranks top (pct 1.0), the five ties share pct 0.5
    assert words.loc[10] == "popular" and (words.loc[[11, 12, 13, 14, 15]] == "niche").all()
    with pytest.raises(ValueError, match="one word more"):
        pr.popularity_labels(train, ITEMS, cuts=(0.5,), words=("a",))
    from recsys_lib.data.splits import subsample_ratings

    small = subsample_ratings(train, n_users=2, n_items=3, seed=0, min_per_user=1)
    top3 = set(train["item_id"].value_counts().index[:3])
    assert set(small["item_id"]) <= top3 and small["user_id"].nunique() == 2
    with pytest.raises(ValueError, match="fewer users"):
        subsample_ratings(train, n_users=9, n_items=3)


def test_encode_reuses_the_cache_per_text(tokenizer):
    tower = ft.TwoTower(tiny_encoder(), tokenizer, n_trainable=1, max_length=16, device="cpu")
    texts = ITEM_TEXT.tolist()
    direct = tower.encode(texts[::-1])
    tower.cache("items", texts)
    assert tower._rows_of("items", texts[::-1]).tolist() == [5, 4, 3, 2, 1, 0]
    assert tower._rows_of("items", ["not cached"]) is None
    np.testing.assert_allclose(tower.encode(texts[::-1]), direct, atol=1e-5)


def test_plot_history_draws_both_panels():
    hist = ft.TrainHistory(steps=[1, 2, 3], loss=[1.0, 0.8, 0.7],
                           evals=[{"step": 0, "auc": 0.5}, {"step": 3, "auc": 0.7}], best_step=3)  # fmt: skip
    fig = ft.plot_history(hist, "auc")
    left, right = fig.axes[:2]
    assert list(left.lines[0].get_ydata()) == [1.0, 0.8, 0.7]
    assert list(right.lines[0].get_ydata()) == [0.5, 0.7]


def test_optimizer_groups_decay_and_head_learning_rate():
    model = tiny_classifier()
    ft.freeze_lower_layers(model, 1)
    config = ft.TrainConfig(lr=1e-4, head_lr_scale=10.0, weight_decay=0.1)
    optimizer, _ = ft.training._optimizer_and_schedule(model, config, total_steps=10)
    head = {id(p) for m in (model.bert.pooler, model.classifier) for p in m.parameters()}
    for group in optimizer.param_groups:
        is_head = {id(p) in head for p in group["params"]}
        assert len(is_head) == 1  # a group is all head or all encoder
        assert group["initial_lr"] == pytest.approx(1e-3 if is_head.pop() else 1e-4)
        assert group["weight_decay"] in (0.0, 0.1)
        if group["weight_decay"]:
            assert all(p.ndim == 2 for p in group["params"])
    n_grouped = sum(len(g["params"]) for g in optimizer.param_groups)
    assert n_grouped == sum(1 for p in model.parameters() if p.requires_grad)


def test_logq_correction_by_hand():
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    log_q = torch.log(torch.tensor([0.5, 0.125]))
    # logits / 0.5 minus log q per column: row0 = [2 - ln .5, 1.2 - ln .125], row1 = [0 - ln .5, 1.6 - ln .125]
    a, b = 2 - math.log(0.5), 1.2 - math.log(0.125)
    c, d = -math.log(0.5), 1.6 - math.log(0.125)
    expected = (
        -(a - math.log(math.exp(a) + math.exp(b))) - (d - math.log(math.exp(c) + math.exp(d)))
    ) / 2
    got = ft.multiple_negatives_loss(u, v, temperature=0.5, log_q=log_q)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # draw probabilities: users 0 (items 0, 1) and 1 (item 0) -> P(0) = (1/2 + 1) / 2, P(1) = 1/4
    q = np.exp(ft.positive_draw_log_q(np.array([0, 0, 1]), np.array([0, 1, 0]), 3))
    np.testing.assert_allclose(q[:2], [0.75, 0.25])
    assert q[2] < 1e-11


def test_frozen_depth_counts_only_a_frozen_bottom():
    model = tiny_classifier()
    assert ft.frozen_depth(model) == 0  # everything trainable
    ft.freeze_lower_layers(model, 1)
    assert ft.frozen_depth(model) == 2  # 3 layers, top 1 trainable
    ft.freeze_lower_layers(model, 0)
    assert ft.frozen_depth(model) == 3
    for p in model.base_model.embeddings.parameters():  # trainable embeddings: nothing cacheable
        p.requires_grad_(True)
    assert ft.frozen_depth(model) == 0


def test_pair_trunk_cache_matches_full_forward_and_needs_a_frozen_trunk(tokenizer):
    model = tiny_classifier()
    users = ["loves westerns and long epic films", "horror", "likes comedy"]
    items = ["a western", "a comedy with a very long description of its plot", "a drama"]
    with pytest.raises(ValueError, match="nothing is frozen"):
        ft.PairTrunkCache(model, tokenizer, users, items, max_length=32, device="cpu")
    ft.freeze_lower_layers(model, 1)
    cache = ft.PairTrunkCache(model, tokenizer, users, items, max_length=32, device="cpu")
    assert len(cache) == 3 and cache.n_frozen == 2
    model.eval()
    with torch.no_grad():
        full = model(**ft.tokenize_pairs(tokenizer, users, items, 32)).logits
        cached = cache.logits(model, [2, 0])  # a sub-batch is trimmed to its own longest pair
    np.testing.assert_allclose(cached.numpy(), full[[2, 0]].numpy(), atol=1e-5)
    probs = torch.softmax(full, -1)[:, 1].numpy()
    np.testing.assert_allclose(cache.predict_proba(model), probs, atol=1e-6)
    with pytest.raises(TypeError, match="BERT-style"):
        ft.PairTrunkCache(tiny_encoder(), tokenizer, users, items, max_length=32)


def test_cached_and_uncached_cross_encoder_training_agree(tokenizer):
    """Without dropout the cached trunk is an exact shortcut: same updates, same weights."""
    pairs = pd.DataFrame({"user_id": [1, 2, 3, 4, 1, 2], "item_id": [10, 11, 12, 13, 14, 15],
                          "label": [1, 1, 1, 0, 0, 0]})  # fmt: skip
    cfg = ft.TrainConfig(epochs=2, batch_size=3, lr=1e-3, max_length=32, device="cpu",
                         progress=False, eval_every=1, patience=None, seed=3)  # fmt: skip
    runs = []
    for cache in (True, False):
        model = tiny_classifier()
        ft.freeze_lower_layers(model, 1)
        hist = ft.train_cross_encoder(model, tokenizer, pairs, USER_TEXT, ITEM_TEXT, cfg,
                                      val_pairs=pairs, cache_trunk=cache)  # fmt: skip
        runs.append((hist, ft.copy_state(model)))
    (cached, w_cached), (plain, w_plain) = runs
    np.testing.assert_allclose(cached.loss, plain.loss, rtol=1e-4)
    assert [e["auc"] for e in cached.evals] == pytest.approx([e["auc"] for e in plain.evals])
    for name in w_plain:
        torch.testing.assert_close(w_cached[name], w_plain[name], rtol=1e-4, atol=1e-6)
    assert cached.setup_seconds > 0


def test_train_history_to_dict_and_rate():
    hist = ft.TrainHistory(steps=[1, 2], loss=[0.7, 0.5], examples=64, seconds=2.0)
    out = hist.to_dict()
    assert out["examples_per_second"] == pytest.approx(32.0)
    assert out["loss"] == [0.7, 0.5] and out["steps"] == [1, 2] and out["device"] == "cpu"
    assert math.isnan(ft.TrainHistory().examples_per_second)  # no time measured yet


def test_load_encoder_is_the_verified_minilm_without_a_head():
    encoder = ft.load_encoder()
    assert type(encoder).__name__ == "BertModel"
    assert encoder.config.hidden_size == 384 and encoder.config.num_hidden_layers == 6
    assert not hasattr(encoder, "classifier")


def test_lora_starts_as_the_base_model_trains_few_weights_and_merges(tokenizer, tmp_path):
    from recsys_lib.text import lora

    pairs = pd.DataFrame({"user_id": [1, 2, 3, 4, 1, 2, 3, 4],
                          "item_id": [10, 11, 12, 13, 14, 15, 10, 11],
                          "label": [1, 1, 1, 1, 0, 0, 0, 0]})  # fmt: skip
    model = tiny_classifier()
    before = ft.predict_click_proba(model, tokenizer, pairs, USER_TEXT, ITEM_TEXT, device="cpu")
    counts = lora.add_lora(model, rank=2, alpha=4.0, n_layers=1)
    # B starts at zero: the adapted model computes exactly what the pretrained one did
    same = ft.predict_click_proba(model, tokenizer, pairs, USER_TEXT, ITEM_TEXT, device="cpu")
    np.testing.assert_allclose(same, before, atol=1e-7)
    wrapped = [m for m in model.modules() if isinstance(m, lora.LoRALinear)]
    assert len(wrapped) == 2  # query and value of the top layer only
    head = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("bert."))
    head += sum(p.numel() for p in model.bert.pooler.parameters())
    assert counts["trainable"] == 2 * 2 * (32 + 32) + head  # A and B of two 32x32 layers
    assert ft.frozen_depth(model) == 2  # the lower layers stay cacheable
    cfg = ft.TrainConfig(epochs=3, batch_size=8, lr=5e-3, warmup_ratio=0.0, max_length=32,
                         device="cpu", progress=False, patience=None)  # fmt: skip
    hist = ft.train_cross_encoder(model, tokenizer, pairs, USER_TEXT, ITEM_TEXT, cfg)
    assert hist.loss[-1] < hist.loss[0]
    assert any(float(m.lora_b.detach().abs().sum()) > 0 for m in wrapped)  # the adapters learned
    trained = ft.predict_click_proba(model, tokenizer, pairs, USER_TEXT, ITEM_TEXT, device="cpu")
    lora.merge_lora(model)
    assert not any(isinstance(m, lora.LoRALinear) for m in model.modules())
    merged = ft.predict_click_proba(model, tokenizer, pairs, USER_TEXT, ITEM_TEXT, device="cpu")
    np.testing.assert_allclose(merged, trained, atol=1e-5)
    loaded = ft.load_cross_encoder(str(ft.save_model(model, tokenizer, tmp_path / "merged")))
    again = ft.predict_click_proba(loaded, tokenizer, pairs, USER_TEXT, ITEM_TEXT, device="cpu")
    np.testing.assert_allclose(again, trained, atol=1e-5)


def test_lora_rejects_bad_settings():
    from recsys_lib.text import lora

    with pytest.raises(ValueError, match="rank"):
        lora.LoRALinear(torch.nn.Linear(4, 4), rank=5)
    with pytest.raises(TypeError, match="nn.Linear"):
        lora.LoRALinear(torch.nn.Conv1d(4, 4, 1))
    with pytest.raises(ValueError, match="n_layers"):
        lora.add_lora(tiny_classifier(), n_layers=4)
    with pytest.raises(ValueError, match="no nn.Linear named"):
        lora.add_lora(tiny_classifier(), targets=("nonexistent",))


def test_click_pair_sets_follow_the_leakage_rules_and_sizes(log):
    train, test = log
    val = train.iloc[[0, 3]]  # two ratings held out of train for validation
    fit = train.drop(index=val.index)
    sets = pr.click_pair_sets(fit, val, train, test, ITEMS, sizes=(4, None, 0), seed=3)

    def keys(frame):
        return set(zip(frame["user_id"], frame["item_id"], strict=True))

    def negatives(frame):
        return keys(frame[frame["label"] == 0])

    assert not negatives(sets.train_all) & keys(fit)
    assert not negatives(sets.val) & keys(pd.concat([fit, val]))
    assert not negatives(sets.test) & keys(pd.concat([train, test]))
    assert keys(sets.val[sets.val["label"] == 1]) == keys(val)
    assert len(sets.train) == 4 and len(sets.train_all) == 2 * len(fit)
    assert len(sets.val) == 2 * len(val) and len(sets.test) == 2 * len(test)  # None / 0: all
    # the same pairs as building and shuffling each set by hand
    by_hand = pr.shuffle_pairs(pr.build_pairs(fit, fit, ITEMS, seed=3), 3).iloc[:4]
    pd.testing.assert_frame_equal(sets.train, by_hand.reset_index(drop=True))
    # a profile/target split: training positives are the targets only, negatives avoid all of fit
    targets = fit.iloc[::2]
    split = pr.click_pair_sets(fit, val, train, test, ITEMS, seed=3, train_targets=targets)
    assert keys(split.train_all[split.train_all["label"] == 1]) == keys(targets)
    assert not negatives(split.train_all) & keys(fit)
    assert len(split.train_all) == 2 * len(targets)
    with pytest.raises(ValueError, match="not in fit"):
        pr.click_pair_sets(fit, val, train, test, ITEMS, train_targets=val)


def test_train_loop_raises_when_an_epoch_yields_too_few_batches():
    model = tiny_classifier()
    cfg = ft.TrainConfig(epochs=2, batch_size=1, grad_accum=2, device="cpu", progress=False)

    def loss_fn(batch):
        return model.classifier.weight.pow(2).mean() * batch.sum(), len(batch)

    def one_batch(rng):  # promises 2 batches per epoch but yields 1: no update could ever happen
        yield torch.ones(1, 2)

    with pytest.raises(RuntimeError, match="fewer than grad_accum=2"):
        ft.train_loop(model, one_batch, 2, loss_fn, cfg, None, "loss", False)


def test_embed_batch_says_what_it_needs(tokenizer):
    tower = ft.TwoTower(tiny_encoder(), tokenizer, n_trainable=1, max_length=16, device="cpu")
    tower.cache("users", ["a user who likes films", "another user"])
    with pytest.raises(ValueError, match="embed_batch\\(name='users'\\) needs rows"):
        tower.embed_batch(name="users")
    with pytest.raises(ValueError, match="needs texts, or the name of a cache and rows"):
        tower.embed_batch()
    assert tower.embed_batch(name="users", rows=[1]).shape == (1, 32)
