"""llm-fallback: Chinese transcripts -> English through an OpenAI-compatible chat-completions server.

Inputs, outputs and the one-final-or-one-error invariant are translator_node's, with translator "remote"; errors
are TranslationFailed, or ServiceUnavailable while the circuit breaker is open. Routed `error` inputs (a local
translator's failures with their `source_text`) are translated here: file_whisper_fallback.yml. Requests are made
one at a time in the event loop, bounded by the timeouts, retries and the breaker. The API key is read from the
variable that DFN_LLM_API_KEY_ENV names (default OPENAI_API_KEY) and never logged.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from dora_funasr_nano.model_core.translation.base import Translator
from dora_funasr_nano.model_core.translation.remote import RemoteTranslator
from dora_funasr_nano.model_core.translation.segments import SegmentOptions

from .config import load_config
from .translator_node import TranslatorNode


@dataclass
class LlmFallbackConfig(SegmentOptions):
    """Remote LLM translation (OpenAI-compatible chat completions)."""

    PREFIX: ClassVar[str] = "DFN_LLM_"
    RENAMED: ClassVar[dict[str, str]] = {
        "base_url": "llm_base_url", "model": "llm_model", "api_key_env": "llm_api_key_env",
        "max_tokens": "max_output_tokens",
    }  # fmt: skip

    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "qwen2.5-coder-0.5b-instruct"  # llama-cpp-python's server answers with its one model anyway
    api_key_env: str = "OPENAI_API_KEY"  # NAME of the env var holding the key; unset/empty = no Authorization
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 30.0  # longest wait for the next bytes of a reply
    max_retries: int = 2  # extra attempts on connect errors, timeouts, HTTP 5xx/429
    retry_backoff_s: float = 0.5  # first backoff; doubles per retry (with jitter), capped at 8 s
    breaker_failures: int = 3  # consecutive failed translations that open the circuit
    breaker_cooldown_s: float = 30.0  # open this long (fail fast), then one trial request
    max_tokens: int = 256
    temperature: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_retries < 0:
            raise ValueError(f"{self.PREFIX}MAX_RETRIES must be >= 0")
        if self.breaker_failures < 1:
            raise ValueError(f"{self.PREFIX}BREAKER_FAILURES must be >= 1")

    def translator(self) -> RemoteTranslator:
        return RemoteTranslator(
            self.base_url, self.model, self.api_key_env,
            connect_timeout_s=self.connect_timeout_s, read_timeout_s=self.read_timeout_s,
            max_retries=self.max_retries, retry_backoff_s=self.retry_backoff_s,
            breaker_failures=self.breaker_failures, breaker_cooldown_s=self.breaker_cooldown_s,
            max_output_tokens=self.max_tokens, temperature=self.temperature,
        )  # fmt: skip


def run(node: Any, cfg: LlmFallbackConfig, translator: Translator | None = None) -> TranslatorNode:
    used = cfg.translator() if translator is None else translator
    print(f"[llm-fallback] {used!r}", file=sys.stderr)
    try:
        return TranslatorNode(node, cfg, used).run()
    finally:
        if translator is None:
            used.close()


def main() -> None:
    from dora import Node

    cfg = load_config(LlmFallbackConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
