"""Pick and load a local text translator: llama.cpp (GGUF) or MLX (mlx-lm), the packaged model by default.

`packaged` is Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF from the registries, `assets.QWEN_CODER_GGUF`): run as is by
llama.cpp, or converted once to an mlx-lm folder for MLX. On Linux CPU llama.cpp is the default (it reads the
4-6-bit weights; MLX is fast there only in fp32), on macOS MLX. All translators share `translate(text,
source_language=, context=, on_partial=) -> Translation`.
"""

from __future__ import annotations

import platform
from typing import Any

ENGINES = ("auto", "llama-cpp", "mlx")
PACKAGED = "packaged"


def choose_engine(model: str = PACKAGED, engine: str = "auto") -> str:
    """llama-cpp for .gguf files and, on Linux, for the packaged model when llama.cpp is installed; mlx otherwise."""
    from .llama_cpp_llm import llama_cpp_available

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine != "auto":
        return engine
    if model.endswith(".gguf"):
        return "llama-cpp"
    if model == PACKAGED and platform.system() == "Linux" and llama_cpp_available():
        return "llama-cpp"
    return "mlx"


def load_local_translator(
    model: str = PACKAGED,
    engine: str = "auto",
    max_output_tokens: int = 256,
    temperature: float = 0.0,
    timeout_s: float | None = None,
    n_threads: int | None = None,
) -> Any:
    """A LlamaCppTranslator or LocalTranslator (MLX); raises ModelNotLoaded when the model is missing.
    n_threads: llama.cpp's CPU threads (None: all cores); MLX chooses its own."""
    from .gguf_convert import packaged_translator_dir, packaged_translator_gguf

    if choose_engine(model, engine) == "llama-cpp":
        from .llama_cpp_llm import LlamaCppTranslator

        path = packaged_translator_gguf() if model == PACKAGED else model
        return LlamaCppTranslator(path, max_output_tokens, temperature, n_threads=n_threads, timeout_s=timeout_s)
    from .local_llm import LocalTranslator

    path = str(packaged_translator_dir()) if model == PACKAGED else model
    return LocalTranslator(path, max_output_tokens, temperature, timeout_s=timeout_s)
