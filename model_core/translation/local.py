"""Pick and load a local text translator: llama.cpp (GGUF) or MLX (mlx-lm), the packaged model by default.

`packaged` is Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF from the registries, `assets.QWEN_CODER_GGUF`): run as is by
llama.cpp, or, for MLX, the mlx-lm folder that `dfn-prepare-models --mlx` converts it into once (loading never
converts). On Linux CPU llama.cpp is the default (it reads the
4-6-bit weights; MLX is fast there only in fp32), on macOS MLX. All translators share `translate(text,
source_language=, context=, on_partial=) -> Translation`.
"""

from __future__ import annotations

import platform
from pathlib import Path

from ..common.assets import QWEN_CODER_GGUF
from ..common.errors import ModelNotLoaded
from ..common.settings import cache_root
from .base import Translator

ENGINES = ("auto", "llama-cpp", "mlx")
PACKAGED = "packaged"
PACKAGED_MLX_DIR = "qwen2.5-coder-0.5b-instruct-mlx"
CONVERT_HINT = "convert it once with `dfn-prepare-models --mlx` (or use DFN_TRANSLATE_ENGINE=llama-cpp)"
TRAINED = "trained"  # the LoRA adapter `dfn-train-translator` writes into the cache dir (as a model: fused in)
TRAINED_LORA_DIR = "translator-lora"
LORA_GGUF = "adapter.gguf"  # llama.cpp's file inside an adapter folder (mlx-lm's are adapters.safetensors + config)
FUSED_GGUF = "fused.gguf"  # the packaged translator with the adapter folded in (`dfn-train-translator --fuse-only`)
TRAIN_HINT = 'train it with `dfn-train-translator` (README, "Translation")'


def packaged_translator_gguf(progress: bool = True) -> Path:
    """The packaged translator's GGUF file (for llama.cpp), assembled from its parts and verified on first use."""
    return QWEN_CODER_GGUF.ensure(progress=progress) / QWEN_CODER_GGUF.target


def packaged_translator_dir() -> Path:
    """The packaged translator's mlx-lm folder (tools.gguf_convert.convert_packaged_translator writes it)."""
    return QWEN_CODER_GGUF.directory().with_name(PACKAGED_MLX_DIR)


def packaged_translator_converted() -> bool:
    """Is the mlx-lm folder there, converted from the GGUF we ship now?"""
    marker = packaged_translator_dir() / ".source-sha256"
    return marker.is_file() and marker.read_text().strip() == QWEN_CODER_GGUF.sha256


def trained_lora_dir() -> Path:
    """Where `dfn-train-translator` writes its adapter (both formats) by default."""
    return cache_root() / TRAINED_LORA_DIR


def fused_translator_gguf() -> Path:
    """The packaged translator with the trained adapter fused in, for llama.cpp; raises ModelNotLoaded if missing."""
    path = trained_lora_dir() / FUSED_GGUF
    if not path.is_file():
        raise ModelNotLoaded(f"no fused translator at {path}; {TRAIN_HINT}, or fuse a trained one with "
                             "`dfn-train-translator --fuse-only`")  # fmt: skip
    return path


def resolve_lora(lora: str, engine: str) -> str | None:
    """The adapter to load for an engine: "" -> none; "trained" -> the cache dir's adapter; a folder -> its
    adapter.gguf for llama.cpp (the folder itself for MLX); a file -> as is. Raises ModelNotLoaded if missing."""
    if not lora:
        return None
    path = trained_lora_dir() if lora == TRAINED else Path(lora).expanduser()
    if engine == "llama-cpp" and path.is_dir():
        path = path / LORA_GGUF
    wanted = path.is_file() if engine == "llama-cpp" else (path / "adapters.safetensors").is_file()
    if not wanted:
        hint = TRAIN_HINT if lora == TRAINED else "give a llama.cpp adapter .gguf or an mlx-lm adapter folder"
        raise ModelNotLoaded(f"no LoRA adapter for {engine} at {path}; {hint}")
    return str(path)


def choose_engine(model: str = PACKAGED, engine: str = "auto") -> str:
    """llama-cpp for .gguf files and, on Linux, for the packaged model when llama.cpp is installed; mlx otherwise."""
    from .llama_cpp import llama_cpp_available

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine != "auto":
        return engine
    if model.endswith(".gguf"):
        return "llama-cpp"
    if model in (PACKAGED, TRAINED) and platform.system() == "Linux" and llama_cpp_available():
        return "llama-cpp"
    return "mlx"


def load_local_translator(
    model: str = PACKAGED,
    engine: str = "auto",
    max_output_tokens: int = 256,
    temperature: float = 0.0,
    timeout_s: float | None = None,
    n_threads: int | None = None,
    lora: str = "",
    english_only: bool = True,
) -> Translator:
    """A LlamaCppTranslator or MlxTranslator; raises ModelNotLoaded when the model is missing (for MLX and the
    packaged model: when it has not been converted yet). n_threads: llama.cpp's CPU threads (None: all cores).
    model: "packaged", "trained" (the packaged one with the trained adapter fused in: `fused_translator_gguf`),
    a .gguf file, or an mlx-lm folder / Hugging Face id.
    lora: a LoRA adapter on top (`resolve_lora`: "", "trained", a .gguf file or an adapter folder).
    english_only: the output may hold no character at U+3000 or above (english_only.py)."""
    if model == TRAINED and lora:
        raise ModelNotLoaded("the trained model has its adapter fused in already: give it no LoRA on top")
    chosen = choose_engine(model, engine)
    if model == TRAINED and chosen == "mlx":
        model, lora = PACKAGED, TRAINED  # the same weights, with the adapter applied unfused
    adapter = resolve_lora(lora, chosen)
    if chosen == "llama-cpp":
        from .llama_cpp import LlamaCppTranslator

        path: str | Path = model
        if model == PACKAGED:
            path = packaged_translator_gguf()
        elif model == TRAINED:
            path = fused_translator_gguf()
        return LlamaCppTranslator(path, max_output_tokens, temperature, n_threads=n_threads, timeout_s=timeout_s,
                                  lora_path=adapter, english_only=english_only)  # fmt: skip
    from .mlx import MlxTranslator

    if model == PACKAGED:
        if not packaged_translator_converted():
            raise ModelNotLoaded(f"the packaged translator has no mlx-lm folder yet; {CONVERT_HINT}")
        model = str(packaged_translator_dir())
    return MlxTranslator(model, max_output_tokens, temperature, timeout_s=timeout_s, adapter_path=adapter,
                         english_only=english_only)  # fmt: skip
