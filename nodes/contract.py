"""The message contract between nodes: every input/output name and metadata key, declared once, and the messages
built and parsed in one place (audio: float32 samples; text: one string; error: one JSON string). The README's
"Message contract" table documents each key: what it means and who sets it.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Final

import numpy as np
import pyarrow as pa

from dora_funasr_nano.model_core.common.errors import FunAsrNanoError, InvalidAudio, InvalidText
from dora_funasr_nano.model_core.speech.audio import normalize


class Port:
    """Input and output ids."""

    AUDIO: Final = "audio"  # audio-source -> vad; tts's speech
    SEGMENT: Final = "segment"  # vad -> asr
    TEXT: Final = "text"  # asr / translators -> translators, tts, probe
    ERROR: Final = "error"  # every node's typed errors
    READY: Final = "ready"  # model nodes: loaded (ok) or not; audio-source's optional input
    TICK: Final = "tick"  # audio-source's timer input
    ACK: Final = "ack"  # vad -> audio-source: chunks processed up to `seq` (flow control)
    DONE: Final = "done"  # asr text/error -> vad: a segment has its final (vad inputs named done*)
    ALIVE: Final = "alive"  # every node with a health check: an empty message each second (events.Heartbeat)
    TRANSCRIPT: Final = "transcript"  # funasr (unified, DFN_FUNASR_TRANSCRIPT): the Chinese beside each English


class Key:
    """Metadata keys (and the error body's fields)."""

    # ids and timing of one utterance, copied from input to output by every node (SEGMENT_KEYS)
    SESSION_ID: Final = "session_id"
    SEGMENT_ID: Final = "segment_id"
    START_S: Final = "start_s"
    END_S: Final = "end_s"
    CAPTURED_AT: Final = "captured_at"
    SEGMENTED_AT: Final = "segmented_at"  # vad: wall clock when it cut the segment (its decision, after the silence)
    # stream control
    SEQ: Final = "seq"
    FIN: Final = "fin"
    EOS: Final = "eos"
    # audio
    SAMPLE_RATE: Final = "sample_rate"
    CHANNELS: Final = "channels"
    OVERFLOWS: Final = "overflows"
    FORCED_SPLIT: Final = "forced_split"
    SPEECH_FRAMES: Final = "speech_frames"
    NONFINITE_SAMPLES: Final = "nonfinite_samples"
    TEXT_LANGUAGE: Final = "text_language"
    SKIPPED: Final = "skipped"  # tts: segments of the session it never got (a drop_oldest queue), so far
    # text
    LANGUAGE: Final = "language"
    PRIMITIVE: Final = "primitive"
    SOURCE_TEXT: Final = "source_text"
    SOURCE_LANGUAGE: Final = "source_language"
    TASK: Final = "task"
    FINISH_REASON: Final = "finish_reason"
    TOKENS: Final = "tokens"
    ASR_S: Final = "asr_s"
    FRONTEND_S: Final = "frontend_s"
    ENCODER_S: Final = "encoder_s"
    LLM_S: Final = "llm_s"
    RTF: Final = "rtf"
    ENCODER_BACKEND: Final = "encoder_backend"
    DECODER_BACKEND: Final = "decoder_backend"
    TRANSLATOR: Final = "translator"
    TRANSLATE_S: Final = "translate_s"
    LLM_ATTEMPTS: Final = "llm_attempts"
    # errors and ready
    CODE: Final = "code"
    MESSAGE: Final = "message"  # error body only
    OK: Final = "ok"
    COUNT: Final = "count"  # AudioDropped: how many chunks, from `seq` on
    ROLE: Final = "role"  # "transcript": a companion text of the segment, not its final result (the probe)
    REDO: Final = "redo"  # vad: a segment sent again after the asr restarted (1, 2, ...); copied to its final
    TIMESTAMP: Final = "timestamp"  # set by dora itself on every message


SEGMENT_KEYS = (Key.SESSION_ID, Key.SEGMENT_ID, Key.START_S, Key.END_S, Key.CAPTURED_AT, Key.SEGMENTED_AT, Key.REDO)
# the asr's stage times, carried on by the text translators so the final English says where its time went
ASR_TIMING_KEYS = (Key.ASR_S, Key.FRONTEND_S, Key.ENCODER_S, Key.LLM_S, Key.TOKENS)


def now() -> float:
    """Wall clock used for captured_at and latencies (seconds since the epoch)."""
    return time.time()


def flat(metadata: dict[str, Any]) -> dict[str, Any]:
    """dora metadata must be flat bool/int/float/str (or lists); drop None, convert numpy scalars."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in metadata.items() if v is not None}


def segment_ids(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: metadata[k] for k in SEGMENT_KEYS if k in metadata}


def asr_timing(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: metadata[k] for k in ASR_TIMING_KEYS if k in metadata}


def audio_message(samples: np.ndarray, sample_rate: int, **metadata: Any) -> tuple[pa.Array, dict[str, Any]]:
    return pa.array(np.asarray(samples, dtype=np.float32)), flat({Key.SAMPLE_RATE: int(sample_rate), **metadata})


def read_audio(value: pa.Array, metadata: dict[str, Any]) -> np.ndarray:
    """Arrow audio (float or PCM integers, optionally interleaved `channels`) -> 16 kHz mono float32.

    A missing sample_rate is an error: guessing would silently mis-read the audio.
    """
    if Key.SAMPLE_RATE not in metadata:
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
    try:
        rate, channels = int(metadata[Key.SAMPLE_RATE]), int(metadata.get(Key.CHANNELS, 1))
    except (TypeError, ValueError):  # a foreign node's metadata: strings, floats as text, lists
        raise InvalidAudio(f"sample_rate / channels are not integers: {metadata.get(Key.SAMPLE_RATE)!r}") from None
    return normalize(samples, rate, channels)


def text_message(
    text: str, language: str, *, fin: bool = True, seq: int = 0, **metadata: Any
) -> tuple[pa.Array, dict[str, Any]]:
    meta = {Key.LANGUAGE: language, Key.PRIMITIVE: "text", Key.FIN: fin, Key.SEQ: seq, **metadata}
    return pa.array([text]), flat(meta)


def ack_message(session_id: str, seq: int) -> tuple[pa.Array, dict[str, Any]]:
    """Flow control: chunks of `session_id` are processed up to `seq`."""
    return pa.array([seq], pa.int64()), {Key.SESSION_ID: session_id, Key.SEQ: seq}


def read_text(value: pa.Array) -> str:
    """The first item as text, whatever it is ("" for none): for sinks that record anything (the probe). Only that
    item is converted, so a huge foreign array costs nothing."""
    return "" if not len(value) else str(value[0].as_py())


def read_one_text(value: Any) -> str:
    """The one string of a text message; InvalidText for anything else (a number, a null, a list, several items),
    checked before any item is converted."""
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if not isinstance(value, pa.Array):
        raise InvalidText(f"a text message must be an Arrow array, got {type(value).__name__}")
    if pa.types.is_dictionary(value.type):
        value = value.dictionary_decode()
    if not (pa.types.is_string(value.type) or pa.types.is_large_string(value.type)):
        raise InvalidText(f"a text message must hold one string, got type {value.type}")
    if len(value) != 1 or value.null_count:
        raise InvalidText(f"a text message must hold one string, got {len(value)} items ({value.null_count} null)")
    return str(value[0].as_py())


def error_message(error: FunAsrNanoError | str, message: str = "", /, **metadata: Any) -> tuple[pa.Array, dict]:
    """`error` may be a typed exception (its class name is the code) or a code string with a message."""
    if isinstance(error, FunAsrNanoError):
        code, message = error.code, message or str(error)
    else:
        code = error
    meta = flat({Key.FIN: True, **metadata})
    body = {Key.CODE: code, Key.MESSAGE: message, Key.SESSION_ID: meta.get(Key.SESSION_ID),
            Key.SEGMENT_ID: meta.get(Key.SEGMENT_ID)}  # fmt: skip
    return pa.array([json.dumps(body, ensure_ascii=False)]), {**meta, Key.CODE: code}


def read_error(value: pa.Array) -> dict[str, Any]:
    return json.loads(read_text(value))


def send_ready(node: Any, load_error: FunAsrNanoError | None, **metadata: Any) -> None:
    """Announce on `ready` that the node can take work (ok=false: it will answer every input with an error)."""
    meta = {Key.OK: load_error is None, **({Key.CODE: load_error.code} if load_error else metadata)}
    try:
        node.send_output(Port.READY, pa.array([meta[Key.OK]]), flat(meta))
    except Exception as exc:  # noqa: BLE001 - graphs that do not declare `ready` do not need it
        print(f"[ready] not sent: {exc}", file=sys.stderr)
