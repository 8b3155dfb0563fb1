"""Microphone capture through PortAudio (sounddevice), delivered as 16 kHz mono float32."""

from __future__ import annotations

import queue
from typing import Any

import numpy as np
import soxr

from ..common.errors import DeviceUnavailable
from .audio import SAMPLE_RATE


class MicCapture:
    """PortAudio capture. The callback only enqueues; overflows are counted, never handled in the callback.

    `device`: a sounddevice input name or index ("" = the system default); `chunk`: the block size in 16 kHz
    samples. Opening a missing or busy device raises DeviceUnavailable."""

    def __init__(self, device: str, chunk: int) -> None:
        import sounddevice as sd

        self.frames: queue.Queue[np.ndarray] = queue.Queue()
        self.overflows = 0
        dev: int | str | None = int(device) if device.isdigit() else (device or None)
        try:
            info = sd.query_devices(dev, "input")
            # Capture at 16 kHz when the device allows it, else at its native rate and resample here.
            try:
                sd.check_input_settings(device=dev, samplerate=SAMPLE_RATE, channels=1, dtype="float32")
                self.rate = SAMPLE_RATE
            except Exception:
                self.rate = int(info["default_samplerate"])
            self.stream = sd.InputStream(
                device=dev,
                samplerate=self.rate,
                channels=1,
                dtype="float32",
                blocksize=chunk * self.rate // SAMPLE_RATE,
                callback=self._callback,
            )
            self.stream.start()
        except Exception as exc:  # PortAudio raises plain Exceptions/ValueErrors
            raise DeviceUnavailable(f"cannot open audio input {device or '(default)'}: {exc}") from exc
        self.name: str = info["name"]
        self.resampler = None if self.rate == SAMPLE_RATE else soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, "float32")

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self.overflows += 1
        self.frames.put_nowait(indata[:, 0].copy())

    def read(self) -> np.ndarray:
        """Everything captured since the last call, as 16 kHz samples."""
        blocks = []
        while True:
            try:
                blocks.append(self.frames.get_nowait())
            except queue.Empty:
                break
        data = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        return data if self.resampler is None else self.resampler.resample_chunk(data)

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()
