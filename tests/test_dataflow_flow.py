"""Nothing lost under a fast replay: a file longer than dora's queue cap (10 x queue_size = 10,000 chunks of 20 ms)
replayed as fast as possible gives exactly the segments of the same file in 100 ms chunks (well under the cap),
because the source waits for the VAD's acknowledgements and the VAD for the ASR's finals."""

import numpy as np
import pytest
import soundfile as sf
from dfn_testing import DATAFLOWS, speech_with_gaps
from dora_graphs import dora_run, finals

pytestmark = pytest.mark.integration
GRAPH = "file_funasr_transcribe.yml"  # the tiny random Fun-ASR-Nano: a fast ASR, so the run is about the VAD


def long_speech(seconds: float) -> np.ndarray:
    block = speech_with_gaps(["nihao_shijie", "jishu", "pangrama"], gap_s=1.2)
    return np.tile(block, int(np.ceil(seconds * 16000 / block.size)))


def spans(records: list[dict]) -> list[tuple[float, float]]:
    return [(r["start_s"], r["end_s"]) for _, r in sorted(finals(records).items())]


def test_fast_replay_of_more_chunks_than_any_queue_holds_loses_nothing(tmp_path, tiny):
    path = tmp_path / "long.flac"
    sf.write(path, long_speech(215), 16000)  # 10,750 chunks of 20 ms
    common = {"DFN_SOURCE_REALTIME": "false", "DFN_SOURCE_FILE": str(path), "DFN_FUNASR_MODEL": str(tiny.official_dir),
              "DFN_FUNASR_MAX_TOKENS": "4"}  # fmt: skip
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    small, log = dora_run(GRAPH, tmp_path / "a", timeout=600, DFN_SOURCE_CHUNK_MS="20", **common)
    large, _ = dora_run(GRAPH, tmp_path / "b", timeout=600, DFN_SOURCE_CHUNK_MS="100", **common)
    assert "hit hard cap" not in log, "dora dropped queued messages"
    assert len(spans(small)) >= 50, spans(small)  # 18 x 3 utterances
    assert spans(small) == spans(large)


def test_a_tiny_queue_shows_what_the_acknowledgements_prevent(tmp_path, tiny):
    """The vad's audio queue cut to dora's minimum (100 messages): paced by acknowledgements (40 in flight) the
    replay still loses nothing; unpaced, dora drops chunks, and the loss arrives as AudioDropped errors."""
    text = (DATAFLOWS / GRAPH).read_text()
    queue = "audio: {source: audio-source/audio, queue_size: 1000, queue_policy: backpressure}"
    window = 'DFN_SOURCE_MAX_IN_FLIGHT: "500"'
    assert queue in text and window in text
    graphs = {}
    for run, in_flight in (("paced", "40"), ("unpaced", "0")):  # a node's env: block wins over the shell's
        graphs[run] = tmp_path / f"{run}.yml"
        graphs[run].write_text(text.replace(queue, queue.replace("1000", "10")).replace(window, window.replace(
            "500", in_flight)))  # fmt: skip
        (tmp_path / run).mkdir()
    (tmp_path / "reference").mkdir()
    path = tmp_path / "long.flac"
    sf.write(path, long_speech(120), 16000)  # 6,000 chunks of 20 ms
    common = {"DFN_SOURCE_REALTIME": "false", "DFN_SOURCE_FILE": str(path), "DFN_SOURCE_CHUNK_MS": "20",
              "DFN_FUNASR_MODEL": str(tiny.official_dir), "DFN_FUNASR_MAX_TOKENS": "4"}  # fmt: skip
    paced, log = dora_run(str(graphs["paced"]), tmp_path / "paced", timeout=600, **common)
    assert "hit hard cap" not in log
    reference, _ = dora_run(GRAPH, tmp_path / "reference", timeout=600, **common)
    assert spans(paced) == spans(reference) and len(spans(paced)) >= 25
    unpaced, log = dora_run(str(graphs["unpaced"]), tmp_path / "unpaced", timeout=600, allow_losses=True, **common)
    assert "hit hard cap" in log
    lost = [r for r in unpaced if r.get("code") == "AudioDropped"]
    assert lost and sum(r["count"] for r in lost) > 1000, lost
