"""Node configuration: one dataclass per node, filled from environment variables, then from --flags.

Under `dora run` every node inherits the whole shell environment, so each node reads only its own namespace: the
setting `max_segment_s` of the vad node (PREFIX "DFN_VAD_") is the env var DFN_VAD_MAX_SEGMENT_S or the flag
--max-segment-s. At start-up, before any model loads:
- a name under this node's prefix that is not one of its settings is a ValueError naming the closest settings;
- so is a DFN_* name under no node's prefix that model_core does not read either (a typo such as DFN_FUNSAR_MODEL),
  in every node; names under another node's prefix are that node's business;
- a setting renamed from an older spelling (RENAMED: field -> old field) also takes the old flag; its old env name
  (ADDED: settings that had none) set without the new one gets a one-line warning, since generic names like PLAY
  may be exported for other tools.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import os
import sys
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from dora_funasr_nano.model_core.common.settings import INTERNAL, SETTINGS

T = TypeVar("T")

# every node's prefix and the config class that owns it (nodes/<module>.py), so that every node knows every name
NODES = {
    "DFN_SOURCE_": "audio_source:AudioSourceConfig",
    "DFN_VAD_": "vad:VadConfig",
    "DFN_WHISPER_": "whisper:WhisperConfig",
    "DFN_FUNASR_": "funasr:FunAsrConfig",
    "DFN_TRANSLATE_": "translate_text:TranslateTextConfig",
    "DFN_LLM_": "llm_fallback:LlmFallbackConfig",
    "DFN_TTS_": "tts:TtsConfig",
    "DFN_PROBE_": "probe:ProbeConfig",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(kind: Any, raw: str, name: str) -> Any:
    if kind is bool:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"{name}: expected true/false, got {raw!r}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"{name}: expected {kind.__name__}, got {raw!r}") from None
    return raw


def _base_type(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def node_configs() -> dict[str, Any]:
    """Every node's config class by its prefix (imported on demand: only errors and docs need them all)."""
    configs = {}
    for prefix, where in NODES.items():
        module, name = where.split(":")
        configs[prefix] = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    return configs


def settings(cls: Any) -> dict[str, str]:
    """env name -> field name, for each setting of the config class `cls`."""
    return {cls.PREFIX + f.name.upper(): f.name for f in dataclasses.fields(cls)}


def old_names(cls: Any) -> dict[str, str]:
    """field name -> the generic env name it was read from before the DFN_<NODE>_ namespaces."""
    renamed, added = getattr(cls, "RENAMED", {}), getattr(cls, "ADDED", ())
    return {f.name: renamed.get(f.name, f.name).upper() for f in dataclasses.fields(cls) if f.name not in added}


def _unknown(var: str, known: list[str], why: str) -> ValueError:
    close = difflib.get_close_matches(var, known, n=3, cutoff=0.6)
    return ValueError(f"{var} is {why}" + (f"; did you mean {' or '.join(close)}?" if close else ""))


def check_env(cls: Any, env: Mapping[str, str]) -> None:
    """The start-up errors for DFN_* names nobody reads (see the module docstring)."""
    own = settings(cls)
    # the variable that DFN_LLM_API_KEY_ENV names holds a key, not a setting
    key_vars = {v for k, v in env.items() if k.startswith("DFN_") and k.endswith("_ENV")}
    for var in sorted(env):
        if not var.startswith("DFN_") or var in own or var in SETTINGS or var in INTERNAL or var in key_vars:
            continue
        if var.startswith(cls.PREFIX):
            raise _unknown(var, sorted(own), f"not a setting of this node (its settings are {cls.PREFIX}*)")
        if not any(var.startswith(prefix) for prefix in NODES):
            known = [*SETTINGS, *(name for config in node_configs().values() for name in settings(config))]
            raise _unknown(var, known, "not read by any dora-funasr-nano node nor by model_core")


def warn_old_names(cls: Any, env: Mapping[str, str]) -> None:
    new = {field: var for var, field in settings(cls).items()}
    for field, old in old_names(cls).items():
        if old in env and new[field] not in env:
            print(f"{old} is no longer read; use {new[field]}", file=sys.stderr)


def load_config(cls: type[T], argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> T:
    """Build `cls` from defaults <- env vars (PREFIX + UPPER_CASE field name) <- command-line flags."""
    env = os.environ if env is None else env
    spec: Any = cls
    check_env(spec, env)
    warn_old_names(spec, env)
    hints = typing.get_type_hints(spec)
    renamed = getattr(spec, "RENAMED", {})
    values: dict[str, Any] = {}
    parser = argparse.ArgumentParser(description=(spec.__doc__ or "").strip())
    for var, name in settings(spec).items():
        if var in env:
            values[name] = _parse(_base_type(hints[name]), env[var], var)
        aliases = [_flag(renamed[name])] if name in renamed else []
        parser.add_argument(_flag(name), *aliases, dest=name, default=None, help=f"env {var}")
    args = parser.parse_args([] if argv is None else argv)
    for name, raw in vars(args).items():
        if raw is not None:
            values[name] = _parse(_base_type(hints[name]), raw, _flag(name))
    return cls(**values)


def resolve_user_path(path: str) -> str:
    """dora starts nodes in the dataflow's folder; a relative path the user typed is relative to their shell's."""
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    shell_cwd = os.environ.get("PWD", "")
    candidate = os.path.join(shell_cwd, path)
    return candidate if shell_cwd and os.path.exists(candidate) else path
