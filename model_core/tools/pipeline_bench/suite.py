"""`dfn-bench run --suite all`: every file graph of dataflows/ in one invocation, and the OpenAI-compatible server
the remote and fallback graphs talk to during their run (`llm=` of a graph spec).

The remote graphs' server, by `llm=`:
- `packaged` / `trained`: our packaged translator (or the fused, trained one) served by llama.cpp on localhost,
  so the remote graph's English is scored like the others' (it goes through the HTTP client, retries, breaker);
- `fake`: fake_llm.py's server, for plumbing speed only (its replies are not translations: speed-only);
- a `.gguf` path: that model, served the same way;
- nothing: the graph's own settings (DFN_LLM_BASE_URL, the key variable): your endpoint, timed as it is.
The server is a process outside `dora run`: its RSS and CPU are sampled too, as node `llm-server`.
The microphone graphs (mic_*.yml) are the file graphs with a live source and are not replayed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .fake_llm import FAKE_KEY, FakeLLMServer
from .runner import GraphSpec

LLM_SERVERS = ("packaged", "trained", "fake")
NO_KEY_VAR = "DFN_BENCH_NO_KEY"  # a variable nobody sets: the local server gets no Authorization header


@dataclass
class LlmEndpoint:
    env: dict[str, str]  # for the graph's nodes
    pids: dict[int, str]  # processes to watch beside the graph's nodes -> their name in the report
    what: str  # for the report


@contextlib.contextmanager
def llm_endpoint(kind: str) -> Iterator[LlmEndpoint]:
    """The server of one run (see the module docstring), stopped when the run is over."""
    if not kind:
        yield LlmEndpoint({}, {}, "the graph's own DFN_LLM_BASE_URL" if os.environ.get("DFN_LLM_BASE_URL") else "")
        return
    if kind == "fake":
        fake = FakeLLMServer()
        try:  # a dummy key, so the Authorization path runs (never a real key)
            yield LlmEndpoint({"DFN_LLM_BASE_URL": fake.url, "OPENAI_API_KEY": FAKE_KEY,
                               "DFN_LLM_API_KEY_ENV": "OPENAI_API_KEY"}, {}, "fake")  # fmt: skip
        finally:
            fake.close()
        return
    from ...translation.llama_cpp import LlamaCppServer
    from ...translation.local import fused_translator_gguf, packaged_translator_gguf

    gguf = {"packaged": packaged_translator_gguf, "trained": fused_translator_gguf}.get(kind, lambda: Path(kind))()
    with LlamaCppServer(gguf) as server:
        assert server.process is not None
        env = {"DFN_LLM_BASE_URL": server.base_url, "DFN_LLM_API_KEY_ENV": NO_KEY_VAR}
        yield LlmEndpoint(env, {server.process.pid: "llm-server"}, f"llama.cpp server on localhost: {gguf.name}")


def graph_suite(
    dataflows: Path, llm: str = "packaged", funasr_model: str = "", funasr_adapter: str = ""
) -> tuple[list[GraphSpec], dict[str, str]]:
    """The graphs of `--suite all`, and the ones left out with why. `llm` is ignored when DFN_LLM_BASE_URL is set
    (your server is benchmarked). The Fun-ASR-Nano graphs need its weights (`funasr_model`, no registry ships
    them); the unified one also a LoRA adapter (`funasr_adapter`)."""
    llm = "" if os.environ.get("DFN_LLM_BASE_URL") else llm
    fake = ",speed_only" if llm == "fake" else ""
    specs = [
        "file_whisper_translate.yml,label=whisper_translate",
        "file_whisper_two_stage.yml,label=whisper_two_stage",
        "file_whisper_two_stage.yml,DFN_TRANSLATE_MODEL=trained,label=whisper_two_stage_fused",
        f"file_whisper_remote.yml,llm={llm}{fake},label=whisper_remote",
        f"file_whisper_fallback.yml,llm={llm}{fake},label=whisper_fallback",
    ]
    skipped: dict[str, str] = {}
    if not _has_fused():
        specs.remove(specs[2])
        skipped["whisper_two_stage_fused"] = "no trained translator (dfn-train-translator)"
    if funasr_model:
        specs += [f"file_funasr_transcribe.yml,DFN_FUNASR_MODEL={funasr_model},label=funasr_transcribe",
                  f"file_funasr_two_stage.yml,DFN_FUNASR_MODEL={funasr_model},label=funasr_two_stage"]  # fmt: skip
        if funasr_adapter:
            specs.append(f"file_funasr_unified.yml,DFN_FUNASR_MODEL={funasr_model},"
                         f"DFN_FUNASR_ADAPTER={funasr_adapter},label=funasr_unified")  # fmt: skip
        else:
            skipped["funasr_unified"] = "no LoRA adapter (--funasr-adapter; dfn-lora train)"
    else:
        for name in ("funasr_transcribe", "funasr_two_stage", "funasr_unified"):
            skipped[name] = "no Fun-ASR-Nano weights (--funasr-model)"
    return [GraphSpec.parse(str(dataflows / s)) for s in specs], skipped


def _has_fused() -> bool:
    from ...common.errors import ModelNotLoaded
    from ...translation.local import fused_translator_gguf

    try:
        fused_translator_gguf()
    except ModelNotLoaded:
        return False
    return True
