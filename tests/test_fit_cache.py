"""The fit cache: a finished training is stored once and read back only for the same key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys_lib.data import sequences as sd
from recsys_lib.models import sequential as sq
from recsys_lib.text.finetune import TrainConfig, TrainHistory
from recsys_lib.text.finetune import fit_cache as fc


def config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "progress": False, "device": "cpu", "seed": 0, **kw})


def net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)  # a frozen tensor: never stored
    return model


class Trainer:
    """A stand-in training: counts its calls and moves the trainable weights by a known step."""

    def __init__(self, model: torch.nn.Module, step: float = 0.5) -> None:
        self.model, self.step, self.calls = model, step, 0

    def __call__(self) -> TrainHistory:
        self.calls += 1
        with torch.no_grad():
            for p in self.model.parameters():
                if p.requires_grad:
                    p.add_(self.step)
        return TrainHistory(steps=[1, 2], loss=[1.0, 0.5], evals=[{"step": 2, "auc": np.float32(0.7)}],
                            best_step=2, best_score=0.7, seconds=12.5)  # fmt: skip


def test_fingerprint_separates_values_types_shapes_and_order():
    a = np.arange(6, dtype=np.int64)
    assert fc.fingerprint(a) == fc.fingerprint(a.copy())
    assert fc.fingerprint(a) != fc.fingerprint(a.astype(np.int32))
    assert fc.fingerprint(a) != fc.fingerprint(a.reshape(2, 3))
    assert fc.fingerprint(a) != fc.fingerprint(a[::-1])
    assert fc.fingerprint(1) != fc.fingerprint(1.0) != fc.fingerprint("1")
    assert fc.fingerprint({"a": 1, "b": 2}) == fc.fingerprint({"b": 2, "a": 1})
    assert fc.fingerprint([1, 2]) != fc.fingerprint([[1, 2]])
    m = sp.csr_matrix(np.eye(3))
    assert fc.fingerprint(m) != fc.fingerprint(sp.csr_matrix(2 * np.eye(3)))
    frame = pd.DataFrame({"user_id": [1, 2], "label": [0, 1]})
    assert fc.fingerprint(frame) != fc.fingerprint(frame.assign(label=[1, 0]))
    assert fc.fingerprint(frame["label"]) != fc.fingerprint(frame["label"].rename("x"))
    with pytest.raises(TypeError, match="cannot hash a object"):
        fc.fingerprint(object())


def test_fingerprint_sees_the_order_of_a_sequence_with_the_same_matrix():
    rows = [(1, i, 1, 0) for i in range(5)] + [(2, 9, 1, 0), (2, 8, 1, 1)]
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    split = sd.sequence_split(ratings)
    redrawn = sd.reorder_training(split, ties_only=True, seed=3)
    assert (redrawn.train.matrix != split.train.matrix).nnz == 0
    assert redrawn.train.items[0].tolist() != split.train.items[0].tolist()
    assert fc.fingerprint(redrawn.train) != fc.fingerprint(split.train)


def test_state_fingerprint_follows_every_value():
    a, b = net(), net()
    assert fc.state_fingerprint(a) == fc.state_fingerprint(b)
    with torch.no_grad():
        b[1].bias[0] += 1e-7
    assert fc.state_fingerprint(a) != fc.state_fingerprint(b)


def test_second_training_is_read_back_with_its_weights_and_history(tmp_path):
    first = net()
    trainer = Trainer(first)
    h1 = fc.cached_training(first, config(), {"x": np.arange(3)}, trainer, root=tmp_path)
    assert trainer.calls == 1 and not h1.from_cache
    second = net()
    again = Trainer(second)
    h2 = fc.cached_training(second, config(), {"x": np.arange(3)}, again, root=tmp_path)
    assert again.calls == 0 and h2.from_cache
    for p, q in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert (h2.best_step, h2.best_score, h2.seconds, h2.evals) == (2, 0.7, 12.5, h1.evals)
    assert not second.training  # left in evaluation mode, as after a real training
    from safetensors.torch import load_file

    stored = load_file(next(tmp_path.glob("*/weights.safetensors")))
    assert set(stored) == {"0.bias", "1.weight", "1.bias"}  # the frozen 0.weight is not stored


@pytest.mark.parametrize(
    "change",
    ["data", "config", "start", "library"],
)
def test_anything_that_decides_the_weights_retrains(tmp_path, monkeypatch, change):
    fc.cached_training(net(), config(), {"x": np.arange(3)}, Trainer(net()), root=tmp_path)
    model, data, cfg = net(), {"x": np.arange(3)}, config()
    if change == "data":
        data = {"x": np.arange(4)}
    elif change == "config":
        cfg = config(lr=1e-3)
    elif change == "start":
        model = net(seed=1)
    else:
        monkeypatch.setattr(fc, "library_fingerprint", lambda: "edited")
    trainer = Trainer(model)
    assert not fc.cached_training(model, cfg, data, trainer, root=tmp_path).from_cache
    assert trainer.calls == 1


def test_corrupt_weights_are_deleted_and_the_model_retrained(tmp_path):
    fc.cached_training(net(), config(), {}, Trainer(net()), root=tmp_path)
    weights = next(tmp_path.glob("*/weights.safetensors"))
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    model = net()
    trainer = Trainer(model)
    with pytest.warns(UserWarning, match="corrupt.*trained again"):
        history = fc.cached_training(model, config(), {}, trainer, root=tmp_path)
    assert trainer.calls == 1 and not history.from_cache
    assert fc.cached_training(net(), config(), {}, Trainer(net()), root=tmp_path).from_cache


def test_a_manifest_for_another_key_is_not_trusted(tmp_path):
    fc.cached_training(net(), config(), {}, Trainer(net()), root=tmp_path)
    manifest = next(tmp_path.glob("*/manifest.json"))
    entry = json.loads(manifest.read_text())
    entry["key"]["data"] = "something else"
    manifest.write_text(json.dumps(entry))
    trainer = Trainer(net())
    with pytest.warns(UserWarning, match="another key"):
        fc.cached_training(trainer.model, config(), {}, trainer, root=tmp_path)
    assert trainer.calls == 1


def test_the_cache_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_FIT_CACHE", "off")
    assert fc.default_fit_cache_dir() is None
    trainer = Trainer(net())
    fc.cached_training(trainer.model, config(), {}, trainer)
    fc.cached_training(trainer.model, config(), {}, trainer)
    assert trainer.calls == 2
    monkeypatch.setenv("RECSYS_FIT_CACHE", str(tmp_path / "fits"))
    assert fc.default_fit_cache_dir() == tmp_path / "fits"
    trainer = Trainer(net())
    fc.cached_training(trainer.model, config(), {}, trainer, root=None)
    assert trainer.calls == 1 and not any(tmp_path.iterdir())


def test_tokenizer_key_follows_the_token_ids():
    class Tok:
        def __init__(self, offset: int) -> None:
            self.offset = offset

        def __len__(self) -> int:
            return 10

        def __call__(self, a: str, b: str) -> dict[str, list[int]]:
            return {"input_ids": [len(a) + self.offset, len(b)]}

    assert fc.tokenizer_key(Tok(0)) == fc.tokenizer_key(Tok(0))
    assert fc.tokenizer_key(Tok(0)) != fc.tokenizer_key(Tok(1))


def test_sasrec_reads_its_training_back_and_a_redrawn_order_retrains(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_FIT_CACHE", str(tmp_path))
    rows = [(u, (u + t) % 9, 1, t // 2) for u in range(12) for t in range(7)]
    split = sd.sequence_split(
        pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    )
    cfg = config(epochs=3, batch_size=4, lr=1e-2, max_length=5, eval_every=None, patience=None)

    def fit(data: sd.SequenceSplit) -> sq.SASRec:
        return sq.SASRec(dim=8, layers=1, heads=1, config=cfg).fit(data.train, valid=data.valid)

    cold, warm = fit(split), fit(split)
    assert not cold.history_.from_cache and warm.history_.from_cache
    np.testing.assert_array_equal(cold.score(np.arange(12)), warm.score(np.arange(12)))
    assert warm.history_.evals == cold.history_.evals
    redrawn = sd.reorder_training(split, ties_only=True, seed=1)
    assert not fit(redrawn).history_.from_cache
    assert len(list(Path(tmp_path).glob("*/manifest.json"))) == 2
