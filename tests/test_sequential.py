"""Sequences, leave-last-out, the sequential models and their evaluation helpers."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from recsys_lib.data import sequences as sd
from recsys_lib.data.interactions import Interactions
from recsys_lib.evaluation.protocol import evaluate, evaluate_per_user
from recsys_lib.models import sequential as sq
from recsys_lib.models.base import Popularity
from recsys_lib.text.finetune import TrainConfig


def frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


# user 1: items 10, 11 share t=5 (file order 11 then 10), then 12 at t=7, 13 at t=9
# user 2: items 12 (t=1), 10 (t=2), 11 (t=3)
RATINGS = frame([(1, 11, 4, 5), (2, 10, 3, 2), (1, 13, 5, 9), (1, 10, 2, 5), (2, 12, 1, 1),
                 (1, 12, 4, 7), (2, 11, 5, 3)])  # fmt: skip


def test_order_keeps_file_order_for_equal_timestamps():
    ordered = sd.order_interactions(RATINGS)
    assert ordered[ordered.user_id == 1].item_id.tolist() == [11, 10, 12, 13]
    assert ordered[ordered.user_id == 2].item_id.tolist() == [12, 10, 11]


def test_timestamp_ties_by_hand():
    ties = sd.timestamp_ties(RATINGS)
    # consecutive pairs: user 1 has 3 (one tied), user 2 has 2 (none) -> 1/5
    assert ties["tied_pairs"] == pytest.approx(1 / 5)
    assert ties["tied_interactions"] == pytest.approx(2 / 7)
    assert ties["users_with_ties"] == pytest.approx(1 / 2)
    assert ties["tied_last"] == 0.0
    last_tied = frame([(1, 1, 1, 5), (1, 2, 1, 6), (1, 3, 1, 6), (2, 1, 1, 1), (2, 2, 1, 2)])
    assert sd.timestamp_ties(last_tied)["tied_last"] == pytest.approx(1 / 2)


def test_sequences_order_and_matrix():
    seqs = sd.Sequences.from_frame(RATINGS)
    cat = seqs.catalogue
    assert cat.item_ids[seqs.items[0]].tolist() == [11, 10, 12, 13]
    assert cat.item_ids[seqs.items[1]].tolist() == [12, 10, 11]
    assert seqs.lengths().tolist() == [4, 3]
    assert (seqs.matrix.toarray() == Interactions.from_frame(RATINGS, cat).matrix.toarray()).all()


def test_pad_sequences_left_pads_and_keeps_the_latest():
    out = sq.pad_sequences([np.array([0, 1, 2, 3]), np.array([5]), np.array([], int)], 3)
    assert out.tolist() == [[2, 3, 4], [0, 0, 6], [0, 0, 0]]
    assert sq.pad_sequences([np.array([4])], 2, offset=0).tolist() == [[0, 4]]
    with pytest.raises(ValueError, match="max_length"):
        sq.pad_sequences([np.array([1])], 0)


def test_leave_last_out_split_has_no_future_in_train():
    split = sd.sequence_split(RATINGS)
    cat = split.train.catalogue
    assert split.test_df.set_index("user_id").item_id.to_dict() == {1: 13, 2: 11}
    assert split.valid_df.set_index("user_id").item_id.to_dict() == {1: 12, 2: 10}
    assert cat.item_ids[split.train.items[0]].tolist() == [11, 10]
    assert cat.item_ids[split.train.items[1]].tolist() == [12]
    assert cat.item_ids[split.history.items[0]].tolist() == [11, 10, 12]
    for user, train_part in split.train_df.groupby("user_id"):
        later = split.valid_df[split.valid_df.user_id == user].timestamp.iloc[0]
        assert (train_part.timestamp <= later).all()
    assert split.train.nnz + split.valid.nnz + split.test.nnz == len(RATINGS)


def test_short_users_stay_in_train():
    split = sd.sequence_split(frame([(1, 1, 1, 1), (1, 2, 1, 2), (2, 1, 1, 1), (2, 2, 1, 2),
                                     (2, 3, 1, 3)]))  # fmt: skip
    assert split.test_df.user_id.tolist() == [2]
    assert split.train.lengths().tolist() == [2, 1]


def test_transition_scores_by_hand():
    # train sequences: user 1: a b a c ; user 2: a b
    seqs = sd.Sequences.from_frame(frame([(1, "a", 1, 1), (1, "b", 1, 2), (1, "a", 1, 3),
                                          (1, "c", 1, 4), (2, "a", 1, 1), (2, "b", 1, 2)]))  # fmt: skip
    model = sq.Transition().fit(seqs)
    scores = model.score([0, 1])
    # user 1's last item is c: nothing followed c, only the popularity tie-break (a, b: 2 users)
    assert scores[0].argmax() in (0, 1) and scores[0].max() < 1e-2
    # user 2's last is b: b -> a once
    assert scores[1][0] == pytest.approx(1 + 1e-3) and scores[1][2] == pytest.approx(0.5e-3)
    with pytest.raises(TypeError, match="Sequences"):
        sq.Transition().fit(Interactions.from_frame(RATINGS))


def toy_sequences(n_users=30, n_items=12, length=8, seed=0):
    """Users walk the catalogue cyclically: item i is followed by item i + 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(n_items)
        rows += [(u, (start + t) % n_items, 1, t) for t in range(length)]
    return sd.sequence_split(frame(rows))


def small_config(**kw):
    base = dict(epochs=30, batch_size=16, lr=1e-2, warmup_ratio=0.0, max_length=6,
                eval_every=None, patience=None, progress=False, device="cpu", seed=0)  # fmt: skip
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def toy():
    return toy_sequences()


@pytest.fixture(scope="module")
def sasrec(toy):
    return sq.SASRec(dim=16, layers=1, heads=2, dropout=0.0, config=small_config()).fit(
        toy.train, valid=toy.valid
    )


def test_sasrec_learns_the_cycle(sasrec, toy):
    result = evaluate(sq.condition_on(sasrec, toy.history), toy.test, k=1)
    assert result["hit_rate@1"] > 0.9  # popularity is near 1/12 here
    assert evaluate(Popularity().fit(toy.history), toy.test, k=1)["hit_rate@1"] < 0.6
    assert sasrec.history_.best_step is not None and sasrec.history_.evals


def test_causal_mask_checked_numerically(sasrec):
    tokens = sq.pad_sequences([np.arange(6) % 12, np.arange(3, 9) % 12], 6)
    before, after = sasrec.future_influence(tokens, 3)
    assert before == 0.0  # positions 0..2 never read position 3
    assert after > 1e-4
    bert = sq.BERT4Rec(dim=16, layers=1, heads=2, dropout=0.0, config=small_config(epochs=1))
    bert.fit(sasrec.train_)
    assert bert.future_influence(tokens, 3)[0] > 1e-4  # bidirectional: it does


def test_training_inputs_hold_no_future_item(sasrec, toy):
    examples = sasrec._examples(toy.train)
    _, owner = sq.sliding_windows(toy.train.items, sasrec.config.max_length + 1, 6, 2)
    inputs, targets = sasrec._batch(examples, None)
    assert (inputs[:, 1:] == targets[:, :-1]).all()  # targets are the inputs shifted by one
    assert examples.shape == (len(owner), sasrec.config.max_length + 1)
    # each toy user visits distinct items, so a held-out item must not appear in its rows
    for matrix in (toy.valid.matrix, toy.test.matrix):
        users, cols = matrix.nonzero()
        for u, c in zip(users, cols, strict=True):
            assert not (examples[owner == u] == c + 1).any()
    # the validation item never enters training: a user's latest window ends on the last
    # train item
    for u, seq in enumerate(toy.train.items):
        if len(seq) > 1:
            assert examples[np.flatnonzero(owner == u)[0], -1] == seq[-1] + 1


def transitions(seqs):
    return Counter(
        (u, a, b) for u, s in enumerate(seqs) for a, b in zip(s[:-1], s[1:], strict=True)
    )


def test_sasrec_uses_every_training_transition_exactly_once():
    rng = np.random.default_rng(1)
    lengths = [1, 2, 6, 7, 8, 13, 14, 40]  # around multiples of max_length = 6
    rows = [(u, int(i), 1, t) for u, n in enumerate(lengths)
            for t, i in enumerate(rng.permutation(60)[: n + 2])]  # fmt: skip
    train = sd.sequence_split(frame(rows)).train
    model = sq.SASRec(config=small_config(max_length=6))
    windows, owner = sq.sliding_windows(train.items, 7, 6, 2)
    np.testing.assert_array_equal(model._examples(train), windows)
    inputs, targets = model._batch(windows, None)
    used = Counter(
        (int(u), int(a) - 1, int(b) - 1)
        for u, row_in, row_out in zip(owner, inputs, targets, strict=True)
        for a, b in zip(row_in, row_out, strict=True)
        if a > 0 and b > 0  # what the loss keeps: a real item read, a real item predicted
    )
    assert used == transitions(train.items)  # each transition once, none twice
    assert sum(used.values()) == sum(max(n - 1, 0) for n in lengths)


def test_sliding_windows_by_hand_and_bert4rec_sees_every_item():
    seq = np.arange(10)  # tokens 1..10
    sas, owner = sq.sliding_windows([np.arange(11), np.array([4])], 4, 3)
    assert sas.tolist() == [[8, 9, 10, 11], [5, 6, 7, 8], [2, 3, 4, 5], [0, 0, 1, 2], [0, 0, 0, 5]]
    assert owner.tolist() == [0, 0, 0, 0, 1]
    assert sq.sliding_windows([seq, np.array([4])], 4, 3, min_items=2)[1].tolist() == [0, 0, 0]
    bert, _ = sq.sliding_windows([seq, np.arange(2)], 4, 4)
    assert bert.tolist() == [[7, 8, 9, 10], [3, 4, 5, 6], [0, 0, 1, 2], [0, 0, 1, 2]]
    items = sq.BERT4Rec(config=small_config(max_length=4))._examples(
        sd.sequence_split(frame([(0, i, 1, i) for i in range(12)])).train
    )
    assert sorted(items[items > 0].tolist()) == list(range(1, 11))  # 10 train items, once each
    with pytest.raises(ValueError, match="stride"):
        sq.sliding_windows([seq], 4, 5)


def test_cpu_training_repeats_exactly(toy):
    def fit():
        model = sq.SASRec(dim=8, layers=1, heads=1, config=small_config(epochs=3))
        return model.fit(toy.train).score(np.arange(5))

    np.testing.assert_array_equal(fit(), fit())


def test_condition_on_reads_and_excludes_the_longer_history(sasrec, toy):
    conditioned = sq.condition_on(sasrec, toy.history)
    recs = conditioned.recommend(np.arange(toy.history.shape[0]), 3)
    seen = toy.history.matrix
    assert not any(seen[u, c] for u in range(len(recs)) for c in recs[u])
    assert sasrec.train_ is toy.train  # the original is untouched
    other = Interactions.from_frame(RATINGS)
    with pytest.raises(ValueError, match="same catalogue"):
        sq.condition_on(sasrec, other)


def test_mask_items_objective():
    tokens = np.array([[0, 0, 3, 4, 5], [0, 0, 0, 0, 7], [1, 2, 3, 4, 5]])
    rng = np.random.default_rng(0)
    inputs, labels = sq.mask_items(tokens, 0.4, 99, rng)
    hidden = inputs == 99
    assert (labels[hidden] == tokens[hidden]).all() and (labels[~hidden] == 0).all()
    assert (inputs[~hidden] == tokens[~hidden]).all()
    assert not hidden[tokens == 0].any() and hidden.any(1).all()
    big = np.tile(np.arange(1, 101), (50, 1))
    share = (sq.mask_items(big, 0.2, 999, rng)[0] == 999).mean()
    assert 0.17 < share < 0.23
    with pytest.raises(ValueError, match="prob"):
        sq.mask_items(tokens, 1.0, 99, rng)


def test_bert4rec_trains_and_predicts_from_a_mask(toy):
    model = sq.BERT4Rec(dim=16, layers=1, heads=2, dropout=0.0, mask_prob=0.3,
                        config=small_config(epochs=40))  # fmt: skip
    model.fit(toy.train, valid=toy.valid)
    tokens = model._inference_tokens([np.array([1, 2])])
    assert tokens[0, -1] == toy.train.shape[1] + 1 and tokens[0, -3:-1].tolist() == [2, 3]
    result = evaluate(sq.condition_on(model, toy.history), toy.test, k=3)
    assert result["hit_rate@3"] > 0.5


def test_item_init_shape_is_checked(toy):
    with pytest.raises(ValueError, match="item_init"):
        sq.SASRec(dim=8, item_init=np.zeros((3, 8)), config=small_config(epochs=1)).fit(toy.train)


def test_text_init_is_copied_into_the_item_table(toy):
    init = sq.project_item_vectors(np.random.default_rng(0).normal(size=(12, 20)), 8)
    model = sq.SASRec(
        dim=8, layers=1, heads=1, item_init=init, config=small_config(epochs=1, lr=0.0)
    )  # lr 0: no update
    model.fit(toy.train)
    np.testing.assert_allclose(model.net_.table.weight[1:].detach().numpy(), init, atol=1e-7)


def test_project_item_vectors_keeps_the_main_directions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)) @ np.array([[5.0, 0, 0, 0], [0, 1.0, 0, 0]]) + 3.0
    z = sq.project_item_vectors(x, 1, std=0.5)
    assert z.shape == (200, 1) and z.std() == pytest.approx(0.5, rel=1e-5)
    assert abs(np.corrcoef(z[:, 0], x[:, 0])[0, 1]) > 0.99
    with pytest.raises(ValueError, match="dim"):
        sq.project_item_vectors(x, 5)


def test_sampled_metrics_match_full_ranking_when_nothing_is_left_out(toy):
    model = Popularity().fit(toy.history)
    full = evaluate(model, toy.test)
    sampled = sq.sampled_evaluate(model, toy.test, n_negatives=1000)
    assert sampled["ndcg@10"] == pytest.approx(full["ndcg@10"])
    few = sq.sampled_evaluate(model, toy.test, n_negatives=2, k=3)
    assert few["hit_rate@3"] == 1.0  # 1 positive + 2 negatives: always in the top 3


def test_popularity_buckets():
    split = sd.sequence_split(frame([(1, 1, 1, 1), (1, 2, 1, 2), (1, 3, 1, 3), (2, 1, 1, 1),
                                     (2, 3, 1, 2), (2, 2, 1, 3)]))  # fmt: skip
    # train: user 1 -> item 1, user 2 -> item 1; test: user 1 -> 3, user 2 -> 2 (count 0)
    buckets = sq.popularity_buckets(split.train, split.test, edges=(1, 2))
    assert buckets.tolist() == ["0-0", "0-0"]
    buckets = sq.popularity_buckets(split.history, split.test, edges=(1, 2))
    assert buckets.tolist() == ["1-1", "1-1"]


# ------------------------------------------------ per-user evaluation on this protocol
def test_evaluate_per_user_averages_to_evaluate(toy):
    model = Popularity().fit(toy.history)
    table = evaluate_per_user(model, toy.test)
    assert table["ndcg@10"].mean() == pytest.approx(evaluate(model, toy.test)["ndcg@10"])
    assert len(table) == toy.test.nnz


@pytest.mark.gpu
def test_gpu_path_trains_with_amp_and_matches_the_contract(toy):
    model = sq.SASRec(dim=16, layers=1, heads=2, config=small_config(epochs=5, device="auto"))
    model.fit(toy.train, valid=toy.valid)
    assert model.device_.startswith("cuda") and np.isfinite(model.history_.loss).all()
    scores = model.score(np.arange(4))
    assert scores.shape == (4, toy.train.shape[1]) and scores.dtype == np.float32


def test_bert4rec_last_item_rows_hide_only_their_last_item(toy):
    model = sq.BERT4Rec(dim=8, layers=1, heads=1, mask_prob=0.5, last_item_prob=1.0,
                        config=small_config(epochs=1))  # fmt: skip
    model.fit(toy.train)
    mask_token = toy.train.shape[1] + 1
    rows = np.array([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5], [0, 0, 0, 0, 7]])
    inputs, labels = model._batch(rows, np.random.default_rng(0))
    assert (inputs[:, -1] == mask_token).all() and (inputs[:, :-1] == rows[:, :-1]).all()
    assert labels[:, -1].tolist() == [5, 5, 7] and (labels[:, :-1] == 0).all()
    model.last_item_prob = 0.0  # the cloze task alone hides other positions too
    inputs, _ = sq.BERT4Rec._batch(model, np.tile(np.arange(1, 21), (20, 1)),
                                   np.random.default_rng(0))  # fmt: skip
    assert (inputs[:, :-1] == mask_token).any()
    with pytest.raises(ValueError, match="last_item_prob"):
        sq.BERT4Rec(last_item_prob=1.5)


def test_random_search_trains_each_point_to_its_own_best_and_sorts(toy):
    space = {"dim": [8, 16], "dropout": [0.0, 0.1], "lr": [1e-2, 1e-4]}

    def make(dim, dropout, lr):
        cfg = small_config(epochs=6, lr=lr, eval_every=2, patience=2)
        return sq.SASRec(dim=dim, layers=1, heads=1, dropout=dropout, config=cfg)

    table = sq.random_search(make, space, toy.train, toy.valid, n_samples=3, seed=1, k=3)
    assert len(table) == 3 and len(table.drop_duplicates(list(space))) == 3
    assert table["ndcg@3"].is_monotonic_decreasing
    assert (table["best_step"] <= table["last_step"]).all() and (table["fit_s"] > 0).all()
    again = sq.random_search(make, space, toy.train, toy.valid, n_samples=3, seed=1, k=3)
    pd.testing.assert_frame_equal(table.drop(columns="fit_s"), again.drop(columns="fit_s"))
    with pytest.raises(ValueError, match="space"):
        sq.random_search(make, {"dim": []}, toy.train, toy.valid, n_samples=1)
    with pytest.raises(ValueError, match="n_samples"):
        sq.random_search(make, space, toy.train, toy.valid, n_samples=0)


def test_reorder_training_moves_ties_or_everything_and_keeps_the_targets():
    rows = [(1, i, 1, i // 4) for i in range(12)] + [(2, 20 + i, 1, i) for i in range(6)]
    split = sd.sequence_split(frame(rows))  # user 1: ties in blocks of 4; user 2: no ties
    seen_ties, seen_all = set(), set()
    for seed in range(20):
        ties = sd.reorder_training(split, ties_only=True, seed=seed)
        first = ties.train.items[0]
        assert [set(first[i : i + 4]) for i in (0, 4)] == [set(split.train.items[0][i : i + 4])
                                                           for i in (0, 4)]  # fmt: skip
        assert ties.train.items[1].tolist() == split.train.items[1].tolist()
        seen_ties.add(tuple(first))
        everything = sd.reorder_training(split, ties_only=False, seed=seed)
        seen_all.add(tuple(everything.train.items[1]))
        for part in (ties, everything):
            assert (part.test.matrix != split.test.matrix).nnz == 0
            assert (part.valid.matrix != split.valid.matrix).nnz == 0
            for u in range(2):  # history = reordered train, then the validation item
                assert part.history.items[u][:-1].tolist() == part.train.items[u].tolist()
                assert part.history.items[u][-1] == split.history.items[u][-1]
                assert sorted(part.train.items[u]) == sorted(split.train.items[u])
    assert len(seen_ties) > 1 and len(seen_all) > 1


def test_item_logits_score_every_item_by_its_table_row_plus_bias(sasrec):
    import torch

    net = sasrec.net_
    trained = net.bias.detach().clone()
    with torch.no_grad():
        net.bias.copy_(torch.arange(net.bias.shape[0], dtype=torch.float32))
        states = torch.randn(3, 4, sasrec.dim)
        expected = states @ net.table.weight[1:].T + net.bias
        torch.testing.assert_close(net.item_logits(states), expected)
        torch.testing.assert_close(net.item_logits(states[0]), expected[0])
        net.bias.copy_(trained)
