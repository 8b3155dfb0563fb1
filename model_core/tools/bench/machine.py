"""What the numbers were measured on: platform, CPU, library versions and the BLAS mapped into the process."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import mlx.core as mx

from ...common.blas import openblas_loaded


def blas_libraries() -> list[str]:
    """BLAS libraries mapped into this process (Linux): MLX's bundled reference BLAS, numpy's own OpenBLAS and,
    when preloaded, the system OpenBLAS (openblas-pthread/libblas.so.3) that MLX's GEMMs need to be fast."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            return sorted({line.split()[-1] for line in maps if "blas" in line.rsplit("/", 1)[-1].lower()})
    except OSError:
        return []


def cpu_name() -> str:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return cpu


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "mlx": getattr(mx, "__version__", None),
        "mlx_lm": version("mlx-lm"),
        "mlx_audio": version("mlx-audio"),
        "openblas_loaded": openblas_loaded(),
        "blas_libraries": blas_libraries(),
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
    }
