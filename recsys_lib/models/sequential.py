"""A user's history as a sentence of items: Transition, SASRec and BERT4Rec.

The ordered data (:class:`~recsys_lib.data.sequences.Sequences`) and the leave-last-out split
(:func:`~recsys_lib.data.sequences.sequence_split`) live in :mod:`recsys_lib.data.sequences`.

    split = sequence_split(ratings)                  # train / valid / history / test
    model = SASRec(config=TrainConfig(...)).fit(split.train, valid=split.valid)
    evaluate(condition_on(model, split.history), split.test)   # the shared evaluation code

**Tokens.** Item column ``c`` is token ``c + 1``; token 0 is padding; BERT4Rec's mask token is
``n_items + 1``. Sequences are left-padded (the latest item is always at the last position).

Both transformers are built from ``transformers`` configurations (GPT-2 for the causal SASRec,
BERT for the bidirectional BERT4Rec) with an item vocabulary and no pretrained weights, and are
trained with full-softmax cross-entropy over the catalogue by ``finetune``'s training loop
(AdamW, early stopping on validation nDCG, tqdm, AMP on CUDA only).

**All the data.** A model reads at most ``config.max_length`` items, but long histories are
not cut to their latest items: :func:`sliding_windows` cuts each history into windows, so
SASRec sees every training transition as a target exactly once and BERT4Rec can hide every
training item. Scoring reads the latest ``max_length`` items.
"""

from __future__ import annotations

import copy
import logging
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from recsys_lib.data.interactions import Interactions
from recsys_lib.data.sequences import Sequences
from recsys_lib.evaluation.protocol import evaluate, evaluation_users
from recsys_lib.models.base import Model
from recsys_lib.retrieval.topk import top_k
from recsys_lib.runtime import resolve_device
from recsys_lib.text.finetune import TrainConfig, TrainHistory, train_loop
from recsys_lib.text.finetune.fit_cache import cached_training
from recsys_lib.validation import (
    POSITIVE,
    POSITIVE_INT,
    SEED,
    ArrayOf,
    InstanceOf,
    Interval,
    Satisfies,
    check_array,
    check_param,
    check_params,
    validate_params,
)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ sequences
def _require_sequences(train: Interactions) -> Sequences:
    if not isinstance(train, Sequences) or len(train.items) != train.shape[0]:
        raise TypeError(
            f"this model needs the order of the interactions, got {type(train).__name__}; build "
            "the training data with Sequences.from_frame(frame, catalogue) or sequence_split()."
        )
    return train


def pad_sequences(sequences: Sequence[ArrayLike], max_length: int, offset: int = 1) -> np.ndarray:
    """Left-padded token matrix (n, max_length) int64 of the latest ``max_length`` items.

    Token = item column + ``offset`` (so 0 stays free for padding).
    """
    check_params("pad_sequences", {"max_length": (POSITIVE_INT, max_length)})
    out = np.zeros((len(sequences), max_length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq, dtype=np.int64)[-max_length:]
        if len(tail):
            out[row, max_length - len(tail) :] = tail + offset
    return out


def sliding_windows(
    sequences: Iterable[ArrayLike], length: int, stride: int, min_items: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Every item of long histories, as left-padded windows of ``length`` items.

    The first window of a sequence holds its latest ``length`` items; each further window
    ends ``stride`` items earlier, until a window reaches the sequence's start (that one is
    shorter and left-padded). With ``stride = length - 1`` consecutive windows share one item,
    so each next-item *transition* (previous item, item) lies inside exactly one window
    (SASRec); with ``stride = length`` each item lies in exactly one window (BERT4Rec).
    Windows with fewer than ``min_items`` items are dropped. Returns (tokens (n_windows,
    length) int64 with token = item column + 1 and 0 = padding, owner (n_windows,): the
    position of each window's sequence in ``sequences``).
    """
    if length < 1 or not 1 <= stride <= length:
        raise ValueError(f"need length >= 1 and 1 <= stride <= length; got length={length}, "
                         f"stride={stride}.")  # fmt: skip
    chunks, owners = [], []
    for row, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.int64)
        end = len(seq)
        while end > 0:
            window = seq[max(0, end - length) : end]
            if len(window) >= min_items:
                chunks.append(window)
                owners.append(row)
            if end <= length:
                break
            end -= stride
    out = pad_sequences(chunks, length)
    return out, np.asarray(owners, dtype=np.int64)


def condition_on(model: Model, history: Interactions) -> Model:
    """A shallow copy of a fitted model that reads ``history`` (and excludes its items) when
    it scores, without retraining: how a sequential model predicts the test item from the
    history that includes the validation item. Same catalogue required."""
    trained = model._require_fitted()
    if history.shape != trained.shape:
        raise ValueError(f"history is {history.shape} but the model was fitted on "
                         f"{trained.shape}; use the same catalogue.")  # fmt: skip
    conditioned = copy.copy(model)
    conditioned.train_ = history
    return conditioned


# ----------------------------------------------------------------------------- baselines
class Transition(Model):
    """First-order Markov baseline: score(u, j) = #(last item of u -> j) in train sequences.

    Ties (most items never followed the last one) are broken by popularity, scaled far below
    one count.
    """

    name = "transition"

    def _fit(self, train: Interactions) -> None:
        seqs = _require_sequences(train)
        prev = np.concatenate([s[:-1] for s in seqs.items] + [np.empty(0, np.int64)])
        nxt = np.concatenate([s[1:] for s in seqs.items] + [np.empty(0, np.int64)])
        n = train.shape[1]
        self.counts_ = sp.csr_matrix((np.ones(len(prev), np.float32), (prev, nxt)), shape=(n, n))
        popularity = np.asarray(train.binary().matrix.sum(0)).ravel()
        self.tie_break_ = (1e-3 * popularity / max(popularity.max(), 1)).astype(np.float32)

    def _score(self, user_rows: np.ndarray) -> np.ndarray:
        seqs = _require_sequences(self._require_fitted())
        out = np.tile(self.tie_break_, (len(user_rows), 1))
        for i, u in enumerate(user_rows):
            if len(seqs.items[u]):
                out[i] += self.counts_[seqs.items[u][-1]].toarray().ravel()
        return out


# --------------------------------------------------------------------- evaluation helpers
def sampled_evaluate(
    model: Model, test: Interactions, n_negatives: int = 100, k: int = 10, seed: int = 0
) -> dict[str, float]:
    """Ranking metrics when each user's test items compete with ``n_negatives`` random items
    only (uniform over items the user has not interacted with), as many papers report.

    Krichene & Rendle (2020) show these *sampled* metrics can order models differently from
    full ranking; compare with :func:`recsys_lib.evaluation.protocol.evaluate`.
    """
    from recsys_lib.evaluation.metrics import ranking_report

    check_params("sampled_evaluate", {"n_negatives": (POSITIVE_INT, n_negatives),
                                      "seed": (SEED, seed)})  # fmt: skip
    train = model._require_fitted()
    users = evaluation_users(test)
    scores = model.score(users).astype(np.float64)
    rng = np.random.default_rng(seed)
    n_items = train.shape[1]
    masked = np.full_like(scores, -np.inf)
    for i, u in enumerate(users):
        positives = test.matrix[u].indices
        taken = np.zeros(n_items, dtype=bool)
        taken[train.matrix[u].indices] = True
        taken[positives] = True
        pool = np.flatnonzero(~taken)
        keep = np.r_[positives, rng.choice(pool, min(n_negatives, len(pool)), replace=False)]
        masked[i, keep] = scores[i, keep]
    recommended = top_k(masked, k)[0]
    return ranking_report(recommended, test.matrix[users], k)


def popularity_buckets(
    train: Interactions, test: Interactions, edges: tuple[int, ...] = (20, 100)
) -> pd.Series:
    """Each test user's bucket by the train count of their test item: ``< edges[0]``,
    ``edges[0]..edges[1]-1``, ... (labels name the ranges). Indexed by raw user id, like
    :func:`recsys_lib.evaluation.protocol.evaluate_per_user`, so the two align."""
    if not edges or any(not a < b for a, b in zip((0, *edges), edges, strict=False)):
        raise ValueError(f"edges must be increasing counts > 0, got {edges}.")
    counts = np.asarray(train.binary().matrix.sum(0)).ravel()
    users = evaluation_users(test)
    item = test.matrix[users].indices[test.matrix[users].indptr[:-1]]  # first test item
    bounds = [0, *edges, np.inf]
    labels = [
        f"{int(lo)}-{int(hi) - 1}" if np.isfinite(hi) else f"{int(lo)}+"
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    bucket = pd.cut(counts[item], bounds, right=False, labels=labels)
    user_ids = test.catalogue.user_ids[users]
    return pd.Series(bucket, index=pd.Index(user_ids, name="user_id"), name="popularity")


def project_item_vectors(vectors: np.ndarray, dim: int, std: float = 0.02) -> np.ndarray:
    """Item text vectors (n_items, d_in) -> (n_items, dim) initial item embeddings.

    Centres the vectors, keeps their top ``dim`` principal directions (SVD) and rescales so
    the entries have standard deviation ``std`` (the transformers' default initialisation), so
    text-initialised and random tables start at the same scale.
    """
    check_params("project_item_vectors", {"dim": (POSITIVE_INT, dim), "std": (POSITIVE, std)})
    x = check_array("vectors", vectors, ndim=2)
    if x.ndim != 2 or dim > min(x.shape):
        raise ValueError(f"need (n_items, d_in) vectors with dim <= min(n_items, d_in); got "
                         f"{x.shape} and dim={dim}.")  # fmt: skip
    x = x - x.mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    z = u[:, :dim] * s[:dim]
    return np.asarray((z * std / max(z.std(), 1e-12)).astype(np.float32))


# --------------------------------------------------------------------------- transformers
def mask_items(
    tokens: np.ndarray, prob: float, mask_token: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """BERT4Rec's cloze task: hide each item token with probability ``prob``.

    tokens: (n, L) int64, 0 = padding. Returns (inputs, labels): inputs has ``mask_token`` at
    the hidden positions, labels the hidden token there and 0 elsewhere. Padding is never
    hidden; a row with no hidden item gets its last item hidden, so every row has a target.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob}.")
    real = tokens > 0
    hide = real & (rng.random(tokens.shape) < prob)
    none = real.any(1) & ~hide.any(1)
    hide[none, -1] = True  # left padding: the last position holds the latest item
    return np.where(hide, mask_token, tokens), np.where(hide, tokens, 0)


class _Net:
    """Builds the torch modules lazily so importing this module does not import torch."""

    @staticmethod
    def build(kind: str, n_items: int, max_length: int, dim: int, layers: int, heads: int,
              dropout: float, item_init: np.ndarray | None) -> Any:  # fmt: skip
        import torch
        from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                if kind == "causal":
                    cfg = GPT2Config(vocab_size=n_items + 1, n_positions=max_length, n_embd=dim,
                                     n_layer=layers, n_head=heads, resid_pdrop=dropout,
                                     embd_pdrop=dropout, attn_pdrop=dropout,
                                     activation_function="gelu_pytorch_tanh",
                                     bos_token_id=None, eos_token_id=None)  # fmt: skip
                    self.body: Any = GPT2Model(cfg)
                    self.table: torch.nn.Embedding = self.body.wte
                else:
                    bert_cfg = BertConfig(vocab_size=n_items + 2, hidden_size=dim,
                                     num_hidden_layers=layers, num_attention_heads=heads,
                                     intermediate_size=4 * dim, hidden_dropout_prob=dropout,
                                     attention_probs_dropout_prob=dropout,
                                     max_position_embeddings=max_length, type_vocab_size=1)  # fmt: skip
                    self.body = BertModel(bert_cfg, add_pooling_layer=False)
                    self.table = self.body.embeddings.word_embeddings
                self.bias = torch.nn.Parameter(torch.zeros(n_items))
                if item_init is not None:
                    with torch.no_grad():
                        self.table.weight[1 : n_items + 1] = torch.as_tensor(item_init)

            def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
                """(n, L) tokens -> (n, L, dim) states; padding masked out of attention."""
                states: torch.Tensor = self.body(
                    input_ids=tokens, attention_mask=(tokens > 0).long()
                )[0]
                return states

            def item_logits(self, states: torch.Tensor) -> torch.Tensor:
                """(..., dim) states -> (..., n_items) scores against the item table."""
                return torch.addmm(self.bias, states.reshape(-1, dim),  # bias fused into the
                                   self.table.weight[1 : n_items + 1].T  # product: one pass
                                   ).reshape(*states.shape[:-1], n_items)  # fmt: skip

        return Net()


class _TransformerRecommender(Model):
    """Shared parts of SASRec and BERT4Rec: building, training, scoring from the last position."""

    kind = "causal"

    @validate_params({"dim": POSITIVE_INT, "layers": POSITIVE_INT, "heads": POSITIVE_INT,
                      "dropout": Interval(float, 0, 1, closed="left"),
                      "item_init": [None, ArrayOf(2)], "config": [None, InstanceOf(TrainConfig)],
                      "k": POSITIVE_INT, "score_batch": POSITIVE_INT})  # fmt: skip
    def __init__(self, *, dim: int = 64, layers: int = 2, heads: int = 2, dropout: float = 0.2,
                 item_init: np.ndarray | None = None, config: TrainConfig | None = None,
                 k: int = 10, score_batch: int = 256) -> None:  # fmt: skip
        super().__init__()
        check_param("heads", heads, Satisfies(lambda h: dim % h == 0, f"a divisor of dim={dim}"),
                    where=type(self).__name__, hint="each head gets dim / heads dimensions")  # fmt: skip
        self.dim, self.layers, self.heads, self.dropout = dim, layers, heads, dropout
        self.item_init, self.k, self.score_batch = item_init, k, score_batch
        self.config = config or TrainConfig(epochs=50, batch_size=64, lr=1e-3, warmup_ratio=0.0,
                                            max_length=50, eval_every=None, patience=5)  # fmt: skip
        self.valid: Interactions | None = None
        self.history_: TrainHistory | None = None

    def fit(self, train: Interactions, valid: Interactions | None = None) -> Self:
        """Train on the ``train`` sequences; with ``valid`` (each user's next item), stop early
        on validation nDCG@k and keep the best weights."""
        self.valid = valid
        return super().fit(train)

    def _fit(self, train: Interactions) -> None:
        import torch

        seqs = _require_sequences(train)
        cfg = self.config
        if self.item_init is not None and self.item_init.shape != (train.shape[1], self.dim):
            raise ValueError(f"item_init must be (n_items, dim) = {(train.shape[1], self.dim)}, "
                             f"got {self.item_init.shape}; see project_item_vectors().")  # fmt: skip
        self.device_ = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.net_ = _Net.build(self.kind, train.shape[1], cfg.max_length, self.dim, self.layers,
                               self.heads, self.dropout, self.item_init).to(self.device_)  # fmt: skip
        settings = {k: v for k, v in vars(self).items()
                    if isinstance(v, bool | int | float | str) and not k.endswith("_")}  # fmt: skip
        data = {"class": type(self).__qualname__, "settings": settings, "train": seqs,
                "valid": self.valid}  # fmt: skip
        self.history_ = cached_training(self.net_, cfg, data, lambda: self._train(seqs))
        log.info("%s: best validation nDCG@%d %.4f at step %s", self.name, self.k,
                 self.history_.best_score or float("nan"), self.history_.best_step)  # fmt: skip

    def _train(self, seqs: Sequences) -> TrainHistory:
        """The training loop proper (``self.net_`` built, ``self.valid`` set)."""
        import torch

        cfg = self.config
        examples = self._examples(seqs)
        n_rows = len(examples)
        n_batches = max(1, -(-n_rows // cfg.batch_size))

        def batches(rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
            order = rng.permutation(n_rows)
            for start in range(0, n_rows, cfg.batch_size):
                yield self._batch(examples[order[start : start + cfg.batch_size]], rng)

        def loss_fn(batch: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, int]:
            inputs, targets = (torch.as_tensor(a, device=self.device_) for a in batch)
            keep = (targets > 0) & (inputs > 0)  # a target read from padding is no transition
            logits = self.net_.item_logits(self.net_.hidden(inputs)[keep]).float()
            return torch.nn.functional.cross_entropy(logits, targets[keep] - 1), len(inputs)

        def validate() -> dict[str, float]:
            valid = self.valid
            assert valid is not None  # train_loop gets validate only when there is valid data
            return {f"ndcg@{self.k}": evaluate(self, valid, self.k)[f"ndcg@{self.k}"]}

        return train_loop(self.net_, batches, n_batches, loss_fn, cfg,
                          validate if self.valid is not None else None,
                          f"ndcg@{self.k}", True)  # fmt: skip

    def _score(self, user_rows: np.ndarray) -> np.ndarray:
        import torch

        train = self._require_fitted()
        seqs = _require_sequences(train)
        self.net_.eval()
        out = np.empty((len(user_rows), train.shape[1]), dtype=np.float32)
        for start in range(0, len(user_rows), self.score_batch):
            rows = user_rows[start : start + self.score_batch]
            tokens = torch.as_tensor(self._inference_tokens([seqs.items[u] for u in rows]),
                                     device=self.device_)  # fmt: skip
            with torch.inference_mode():
                last = self.net_.hidden(tokens)[:, -1]
                out[start : start + len(rows)] = self.net_.item_logits(last).float().cpu().numpy()
        return out

    def future_influence(self, tokens: np.ndarray, position: int) -> tuple[float, float]:
        """Replace the item at ``position`` in (n, L) ``tokens`` by another item and return the
        largest change of the output states (before ``position``, from ``position`` on).

        A causal model gives 0.0 for the first number: no position reads a later one.
        """
        import torch

        n_items = self._require_fitted().shape[1]
        self.net_.eval()
        base = torch.as_tensor(tokens, device=self.device_)
        changed = base.clone()
        changed[:, position] = changed[:, position] % n_items + 1  # another item
        with torch.inference_mode():
            delta = (self.net_.hidden(base) - self.net_.hidden(changed)).abs()
        return float(delta[:, :position].max()) if position else 0.0, float(
            delta[:, position:].max()
        )

    # what SASRec and BERT4Rec each define: their training windows, batches and inputs
    @abstractmethod
    def _examples(self, seqs: Sequences) -> np.ndarray: ...

    @abstractmethod
    def _batch(
        self, rows: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _inference_tokens(self, sequences: Sequence[ArrayLike]) -> np.ndarray: ...


class SASRec(_TransformerRecommender):
    """SASRec (Kang & McAuley 2018): a causal transformer (a small GPT-2 configuration over
    item tokens) reads the history and predicts the next item at every position; trained with
    full-softmax cross-entropy over the catalogue (Klenitskiy & Vasilev 2023)."""

    name = "sasrec"
    kind = "causal"

    def _examples(self, seqs: Sequences) -> np.ndarray:
        """Windows of L + 1 items, L apart (:func:`sliding_windows`): inputs are [:-1],
        next-item targets [1:], and every training transition is a target exactly once."""
        length = self.config.max_length + 1
        return sliding_windows(seqs.items, length, stride=length - 1, min_items=2)[0]

    def _batch(self, rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return rows[:, :-1], rows[:, 1:]

    def _inference_tokens(self, sequences: Sequence[ArrayLike]) -> np.ndarray:
        return pad_sequences(sequences, self.config.max_length)


class BERT4Rec(_TransformerRecommender):
    """BERT4Rec (Sun et al. 2019): a bidirectional transformer (a small BERT configuration
    over item tokens) fills in hidden items (:func:`mask_items`); it predicts the next item
    by reading the history followed by one mask token.

    ``last_item_prob``: the share of training windows in which only the *last* item is hidden
    instead of a random ``mask_prob`` share, the exact task it meets when it recommends (Sun et
    al. add such samples too); 0 trains on the cloze task alone.
    """

    name = "bert4rec"
    kind = "bidirectional"

    @validate_params({"mask_prob": Interval(float, 0, 1, closed="neither"),
                      "last_item_prob": Interval(float, 0, 1, closed="both")})  # fmt: skip
    def __init__(self, *, mask_prob: float = 0.2, last_item_prob: float = 0.0,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.mask_prob, self.last_item_prob = mask_prob, last_item_prob

    def _examples(self, seqs: Sequences) -> np.ndarray:
        """Windows of L items, L apart (:func:`sliding_windows`): every training item lies in
        exactly one window, so every item can be hidden."""
        length = self.config.max_length
        return sliding_windows(seqs.items, length, stride=length)[0]

    def _batch(self, rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        mask_token = self._require_fitted().shape[1] + 1
        inputs, labels = mask_items(rows, self.mask_prob, mask_token, rng)
        if self.last_item_prob:  # these rows hide their last item only (left padding)
            last = rng.random(len(rows)) < self.last_item_prob
            inputs[last], labels[last] = rows[last], 0
            inputs[last, -1], labels[last, -1] = mask_token, rows[last, -1]
        return inputs, labels

    def _inference_tokens(self, sequences: Sequence[ArrayLike]) -> np.ndarray:
        tokens = pad_sequences(sequences, self.config.max_length - 1)
        mask_token = self._require_fitted().shape[1] + 1
        return np.asarray(np.c_[tokens, np.full(len(tokens), mask_token)])


# --------------------------------------------------------------------------------- tuning
def random_search(
    make_model: Callable[..., Any],
    space: dict[str, list[Any]],
    train: Interactions,
    valid: Interactions,
    *,
    n_samples: int,
    seed: int = 0,
    k: int = 10,
) -> pd.DataFrame:
    """Random search for a transformer recommender, chosen on validation like a grid search.

    Draws ``n_samples`` distinct points of the grid ``space`` (seeded), fits
    ``make_model(**point)`` on ``train`` with early stopping on ``valid`` (so each point is
    trained to its own best validation step) and scores it on ``valid``. ``train``/``valid``
    must come from the training side (never test). Returns one row per point: the parameters,
    validation ranking metrics, ``best_step``, ``last_step`` and ``fit_s``; best nDCG@k first
    (read the winner with :func:`recsys_lib.evaluation.tuning.best_params`).
    """
    import itertools

    check_params("random_search", {"n_samples": (POSITIVE_INT, n_samples), "seed": (SEED, seed)})
    if not space or any(not values for values in space.values()):
        raise ValueError(f"space must map each parameter to a non-empty list, got {space}.")
    points = [dict(zip(space, v, strict=True)) for v in itertools.product(*space.values())]
    chosen = np.random.default_rng(seed).permutation(len(points))[:n_samples]
    rows = []
    for index in sorted(chosen):
        model = make_model(**points[index]).fit(train, valid=valid)
        history = model.history_
        rows.append({**points[index], **evaluate(model, valid, k), "best_step": history.best_step,
                     "last_step": history.steps[-1], "fit_s": model.fit_seconds_})  # fmt: skip
    table = pd.DataFrame(rows)
    return table.sort_values(f"ndcg@{k}", ascending=False, kind="stable").reset_index(drop=True)
