import fnmatch

import numpy as np
import pytest
import torch

from recsys_lib.linalg import row_cosine
from recsys_lib.production import quantize


def tiny_bert(layers: int = 3):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=64)  # fmt: skip
    return BertModel(config).eval()


class FakeEncoder:
    """The TextEncoder surface the module relies on: .model, .device, .use_cache, .encode."""

    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(3, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)
        ).eval()
        self.device, self.use_cache, self.calls = "cpu", True, 0

    def encode(self, texts, show_progress=True):
        self.calls += 1
        x = torch.tensor(
            [[len(t), ord(t[0]) / 50, t.count("a")] for t in texts], dtype=torch.float32
        )
        with torch.inference_mode():
            return self.model(x.to(self.device)).cpu().numpy()


def test_int8_replaces_linear_layers_and_keeps_outputs_close():
    model = tiny_bert()
    names = quantize.linear_layer_names(model)
    assert "encoder.layer.0.attention.self.query" in names
    q = quantize.quantize_linear_int8(model)
    assert quantize.linear_layer_names(q) == []  # every Linear became a quantised module
    assert len(quantize.linear_layer_names(model)) == len(names)  # the input is untouched
    ids = torch.randint(0, 50, (4, 7))
    with torch.inference_mode():
        ref, out = model(ids).last_hidden_state, q(ids).last_hidden_state
    cos = row_cosine(ref.reshape(-1, 32).numpy(), out.reshape(-1, 32).numpy())
    assert cos.mean() > 0.99


def test_int8_weights_take_about_a_quarter_of_the_bytes():
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 256))
    fp32 = quantize.serialized_megabytes(model)
    assert fp32 == pytest.approx(2 * 257 * 256 * 4 / 1e6, rel=0.05)
    assert quantize.serialized_megabytes(quantize.quantize_linear_int8(model)) < 0.4 * fp32


def test_int8_skip_patterns_keep_layers_in_fp32():
    model = tiny_bert()
    q = quantize.quantize_linear_int8(model, skip=["*.output.dense"], per_channel=False)
    kept = quantize.linear_layer_names(q)
    assert kept and all(n.endswith("output.dense") for n in kept)
    assert len(kept) == 2 * 3  # attention output + FFN output in each of 3 layers
    with pytest.raises(ValueError, match="no nn.Linear"):
        quantize.quantize_linear_int8(model, skip=["*"])


def test_smoothing_preserves_the_function_and_records_maxima():
    model = tiny_bert()
    ids = torch.randint(0, 50, (3, 6))
    absmax = quantize.activation_absmax(model, lambda: model(ids))
    name = "encoder.layer.1.output.dense"
    assert absmax[name].shape == (64,)
    with torch.inference_mode():
        captured = {}

        def keep_input(module, inputs, output):
            captured["x"] = inputs[0]

        handle = model.get_submodule(name).register_forward_hook(keep_input)
        ref = model(ids).last_hidden_state
        handle.remove()
    torch.testing.assert_close(absmax[name], captured["x"].abs().reshape(-1, 64).amax(0))
    smooth = quantize.smooth_linear_inputs(
        model, absmax, alpha=0.5, inplace=quantize.DEFAULT_INPLACE_LAYERS
    )
    assert (
        smooth.get_submodule(name).inplace
        and not smooth.get_submodule("encoder.layer.1.intermediate.dense").inplace
    )
    assert type(smooth.get_submodule(name)).__name__ == "ScaledInput"
    assert type(model.get_submodule(name)).__name__ == "Linear"  # input untouched
    with torch.inference_mode():
        torch.testing.assert_close(smooth(ids).last_hidden_state, ref, rtol=1e-4, atol=1e-5)
    q = quantize.quantize_linear_int8(smooth)
    assert quantize.linear_layer_names(q) == []
    only_ffn = quantize.smooth_linear_inputs(model, absmax, 0.5, include=["*.intermediate.dense"])
    wrapped = [n for n, m in only_ffn.named_modules() if type(m).__name__ == "ScaledInput"]
    assert wrapped == [f"encoder.layer.{i}.intermediate.dense" for i in range(3)]
    names = quantize.linear_layer_names(model)
    ffn_out = [
        n for n in names if any(fnmatch.fnmatch(n, p) for p in quantize.DEFAULT_SMOOTH_LAYERS)
    ]
    assert ffn_out == [
        f"encoder.layer.{i}.{part}.dense" for i in range(3) for part in ("intermediate", "output")
    ]
    with pytest.raises(ValueError, match="alpha"):
        quantize.smooth_linear_inputs(model, absmax, alpha=1.5)


def test_drop_layers_keeps_the_first_layers():
    model = tiny_bert(layers=3)
    pruned = quantize.drop_layers(model, 1)
    assert len(pruned.encoder.layer) == 1 and len(model.encoder.layer) == 3
    assert pruned.config.num_hidden_layers == 1
    ids = torch.randint(0, 50, (2, 5))
    with torch.inference_mode():
        out = pruned(ids).last_hidden_state
        mid = model.encoder.layer[0](model.embeddings(ids))
        mid = mid[0] if isinstance(mid, tuple) else mid
    torch.testing.assert_close(out, mid)
    with pytest.raises(ValueError, match="between 1 and 3"):
        quantize.drop_layers(model, 4)
    with pytest.raises(TypeError, match="BERT-style"):
        quantize.drop_layers(torch.nn.Linear(2, 2), 1)


def test_row_cosine_by_hand():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0]])
    np.testing.assert_allclose(row_cosine(a, b), [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="one shape"):
        row_cosine(a, b[:2])


def test_variant_encoder_and_compare_encoders():
    enc = FakeEncoder()
    q = quantize.int8_encoder(enc)
    assert q.use_cache is False and enc.use_cache is True and q.model is not enc.model
    texts = ["a film", "another", "banana", "x"] * 5
    emb, seconds = quantize.time_encode(q, texts, repeats=2)
    assert emb.shape == (20, 8) and len(seconds) == 2 and q.calls == 2
    table, embs = quantize.compare_encoders({"fp32": enc, "int8": q}, texts, repeats=2, warmup=2)
    assert table.loc["fp32", "speedup"] == pytest.approx(1.0)
    assert table.loc["fp32", "mean_cosine"] == pytest.approx(1.0)
    assert 0.95 < table.loc["int8", "mean_cosine"] <= 1.0 + 1e-9
    np.testing.assert_allclose(
        table.loc["int8", "mean_cosine"], row_cosine(embs["int8"], embs["fp32"]).mean()
    )
    with pytest.raises(KeyError, match="reference"):
        quantize.compare_encoders({"a": enc}, texts, reference="b")


def test_int8_refuses_models_on_cuda_and_half_needs_cuda():
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="CPU only"):
            quantize.quantize_linear_int8(torch.nn.Linear(2, 2).cuda())
    else:
        with pytest.raises(RuntimeError, match="CUDA"):
            quantize.half_precision(torch.nn.Linear(2, 2), "cuda")
    with pytest.raises(ValueError, match="targets CUDA"):
        quantize.half_precision(torch.nn.Linear(2, 2), "cpu")


@pytest.fixture(scope="module")
def minilm():
    from recsys_lib.text.embeddings import ModelNotFoundError, TextEncoder

    try:
        return TextEncoder(device="cpu", use_cache=False)
    except ModelNotFoundError as err:  # machines without the model package
        pytest.skip(f"default encoder not installed: {err}")


@pytest.mark.gpu
def test_fp16_copy_on_cuda_agrees_with_fp32():
    enc = FakeEncoder()
    half = quantize.fp16_encoder(enc, "cuda")
    assert half.device.startswith("cuda") and half.use_cache is False
    assert next(half.model.parameters()).dtype == torch.float16
    assert next(enc.model.parameters()).device.type == "cpu"  # the original stays on CPU
    model = tiny_bert().cuda()
    ids = torch.randint(0, 50, (2, 5)).cuda()
    with torch.inference_mode():
        ref = model(ids).last_hidden_state.float()
        out = quantize.half_precision(model, "cuda")(ids).last_hidden_state.float()
    cos = row_cosine(ref.reshape(-1, 32).cpu().numpy(), out.reshape(-1, 32).cpu().numpy())
    assert cos.min() > 0.999


TEXTS = ["Movie: Toy Story (1995). Genres: Animation, Children's, Comedy.",
         "Movie: Heat (1995). Genres: Action, Crime, Thriller.",
         "User 1 likes Drama, Comedy and Romance; loved Fargo (1996), Casablanca (1942)."]  # fmt: skip


def test_int8_minilm_embeddings_agree_with_fp32(minilm):
    q = quantize.int8_encoder(
        minilm, smooth_alpha=quantize.DEFAULT_SMOOTH_ALPHA, calibration_texts=TEXTS[::-1],
        skip=quantize.DEFAULT_INT8_SKIP,
    )  # fmt: skip
    ref, out = minilm.encode(TEXTS, show_progress=False), q.encode(TEXTS, show_progress=False)
    assert out.shape == (3, 384) and out.dtype == np.float32
    assert row_cosine(ref, out).min() > 0.98
    with pytest.raises(ValueError, match="calibration_texts"):
        quantize.int8_encoder(minilm, smooth_alpha=0.5)
    assert minilm.model.encoder.layer[0].output.dense.weight.dtype == torch.float32


@pytest.mark.gpu
def test_fp16_minilm_on_cuda_agrees_with_fp32(minilm):
    half = quantize.fp16_encoder(minilm, "cuda")
    assert half.device.startswith("cuda") and next(half.model.parameters()).dtype == torch.float16
    ref, out = minilm.encode(TEXTS, show_progress=False), half.encode(TEXTS, show_progress=False)
    assert out.dtype == np.float32 and row_cosine(ref, out).min() > 0.999
    assert minilm.device == "cpu"  # the original encoder is untouched
