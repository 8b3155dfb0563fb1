"""The environment variables model_core reads, all in this one module. Each is only a default: the functions that
use one also take the value as an argument (`FunAsrNano.load(backend=...)`, `SplitModel.ensure()` under
`cache_root()`), and the README's "Environment" table documents them.

| variable        | values                         | default                                                 |
|-----------------|--------------------------------|---------------------------------------------------------|
| DFN_CACHE_DIR   | a folder                       | $XDG_CACHE_HOME/dora-funasr-nano, ~/.cache/dora-funasr-nano |
| DFN_BACKEND     | auto, mlx, numpy               | auto: numpy for one segment on a Linux CPU, else MLX    |
| DFN_BLAS        | auto, off                      | auto: Linux processes restart with the system OpenBLAS  |
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import mlx.core as mx

BACKENDS = ("auto", "mlx", "numpy")
BLAS_MODES = ("auto", "off")
# every DFN_* name model_core reads; the nodes treat any other DFN_* name that no node knows as a typo
SETTINGS = {
    "DFN_CACHE_DIR": "where the packaged models are assembled and converted",
    "DFN_BACKEND": "Fun-ASR-Nano compute backend: auto, mlx or numpy",
    "DFN_BLAS": "auto (Linux: restart with the system OpenBLAS preloaded) or off",
}
INTERNAL = ("DFN_BLAS_REEXEC",)  # set by common.blas on its own re-exec, never by users


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _choice(name: str, allowed: tuple[str, ...], env: Mapping[str, str] | None) -> str:
    value = _env(env).get(name, allowed[0]).strip().lower() or allowed[0]
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """$DFN_CACHE_DIR, else $XDG_CACHE_HOME/dora-funasr-nano, else ~/.cache/dora-funasr-nano."""
    env = _env(env)
    if env.get("DFN_CACHE_DIR"):
        return Path(env["DFN_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dora-funasr-nano"


def default_backend(env: Mapping[str, str] | None = None) -> str:
    """$DFN_BACKEND: what `FunAsrNano.load(backend=None)` uses."""
    return _choice("DFN_BACKEND", BACKENDS, env)


def blas_mode(env: Mapping[str, str] | None = None) -> str:
    """$DFN_BLAS: `off` keeps Linux processes on the BLAS their MLX wheel links."""
    return _choice("DFN_BLAS", BLAS_MODES, env)


def default_dtype() -> mx.Dtype:
    """fp32 on Linux CPU (only fp32 matmuls reach BLAS there: bf16 ones run ~40x slower); bf16 where MLX has a GPU."""
    import mlx.core as mx

    if platform.system() == "Darwin" and mx.metal.is_available():
        return mx.bfloat16
    return mx.float32
