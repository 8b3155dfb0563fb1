"""Node configuration: one dataclass per node, filled from environment variables, then from --flags.

A field `max_segment_s` is set by the env var MAX_SEGMENT_S or the flag --max-segment-s.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from typing import Any, TypeVar

T = TypeVar("T")

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


def load_config(cls: type[T], argv: list[str] | None = None, env: dict[str, str] | None = None) -> T:
    """Build `cls` from defaults <- env vars (UPPER_CASE field names) <- command-line flags."""
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    parser = argparse.ArgumentParser(description=(cls.__doc__ or "").strip())
    for field in dataclasses.fields(cls):
        kind = _base_type(hints[field.name])
        var = field.name.upper()
        if var in env:
            values[field.name] = _parse(kind, env[var], var)
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, default=None, help=f"env {var}")
    args = parser.parse_args([] if argv is None else argv)
    for name, raw in vars(args).items():
        if raw is not None:
            values[name] = _parse(_base_type(hints[name]), raw, "--" + name.replace("_", "-"))
    return cls(**values)
