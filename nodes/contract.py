"""The message contract between nodes (design.md §2), built and parsed in one place.

audio:   pa.array(float32 mono samples); metadata sample_rate, session_id, seq, captured_at (+ segment ids for segments)
text:    pa.array([str]); metadata language, primitive="text", fin, seq + the segment ids
error:   pa.array([json]); json {code, message, session_id, segment_id}; the same ids in metadata
Every message of one utterance carries session_id and segment_id; start_s, end_s, captured_at travel with them.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa

from dora_funasr_nano.model_core.common.errors import FunAsrNanoError, InvalidAudio
from dora_funasr_nano.model_core.speech.audio import normalize

# Keys that identify and time one utterance; every node copies them from input to output.
SEGMENT_KEYS = ("session_id", "segment_id", "start_s", "end_s", "captured_at")


def now() -> float:
    """Wall clock used for captured_at and latencies (seconds since the epoch)."""
    return time.time()


def flat(metadata: dict[str, Any]) -> dict[str, Any]:
    """dora metadata must be flat bool/int/float/str (or lists); drop None, convert numpy scalars."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def segment_ids(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: metadata[k] for k in SEGMENT_KEYS if k in metadata}


def audio_message(samples: np.ndarray, sample_rate: int, **metadata: Any) -> tuple[pa.Array, dict[str, Any]]:
    return pa.array(np.asarray(samples, dtype=np.float32)), flat({"sample_rate": int(sample_rate), **metadata})


def read_audio(value: pa.Array, metadata: dict[str, Any]) -> np.ndarray:
    """Arrow audio (float or PCM integers, optionally interleaved `channels`) -> 16 kHz mono float32.

    A missing sample_rate is an error: guessing would silently mis-read the audio.
    """
    if "sample_rate" not in metadata:
        raise InvalidAudio("audio message has no sample_rate metadata")
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if value.null_count:
        raise InvalidAudio(f"audio message has {value.null_count} null samples")
    try:
        samples = value.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, NotImplementedError) as exc:
        raise InvalidAudio(f"audio message of type {value.type} is not a flat sample array") from exc
    if samples.dtype == object:
        raise InvalidAudio(f"audio message of type {value.type} is not a flat sample array")
    return normalize(samples, int(metadata["sample_rate"]), int(metadata.get("channels", 1)))


def text_message(
    text: str, language: str, *, fin: bool = True, seq: int = 0, **metadata: Any
) -> tuple[pa.Array, dict[str, Any]]:
    meta = {"language": language, "primitive": "text", "fin": fin, "seq": seq, **metadata}
    return pa.array([text]), flat(meta)


def read_text(value: pa.Array) -> str:
    items = value.to_pylist()
    return "" if not items else str(items[0])


def error_message(error: FunAsrNanoError | str, message: str = "", **metadata: Any) -> tuple[pa.Array, dict]:
    """`error` may be a typed exception (its class name is the code) or a code string with a message."""
    if isinstance(error, FunAsrNanoError):
        code, message = error.code, message or str(error)
    else:
        code = error
    meta = flat({"fin": True, **metadata})
    body = {
        "code": code,
        "message": message,
        "session_id": meta.get("session_id"),
        "segment_id": meta.get("segment_id"),
    }
    return pa.array([json.dumps(body, ensure_ascii=False)]), {**meta, "code": code}


def read_error(value: pa.Array) -> dict[str, Any]:
    return json.loads(read_text(value))


def send_ready(node: Any, load_error: FunAsrNanoError | None) -> None:
    """Announce on `ready` that the node can take work (ok=false: it will answer every input with an error)."""
    meta = {"ok": load_error is None, **({"code": load_error.code} if load_error else {})}
    try:
        node.send_output("ready", pa.array([meta["ok"]]), meta)
    except Exception as exc:  # noqa: BLE001 - graphs that do not declare `ready` do not need it
        print(f"[ready] not sent: {exc}", file=sys.stderr)
