"""The benchmark command at tiny shapes: both implementations run in their child processes and every number the
report promises is there and positive."""

import json

import pytest

from dora_funasr_nano.model_core.fun_asr_nano.model import Model
from dora_funasr_nano.model_core.tools.bench import cli, impls, workload

STAGES = ("frontend_ms", "encoder_ms", "prefill_ms", "prefill_first_ms", "decode_ms_per_token", "total_ms")
STAGES += ("prompt_positions",)


def test_tiny_benchmark_reports_both_implementations(tmp_path, capsys):
    pytest.importorskip("mlx_audio")
    out = tmp_path / "bench.json"
    cli.main(["--tiny", "--repeats", "1", "--seconds", "1", "--decode-tokens", "3", "--json", str(out)])
    report = json.loads(out.read_text())

    printed = capsys.readouterr().out
    assert "ours 1 s" in printed and "mlx-audio / ours (this run): 1 s: total" in printed
    assert report["config"]["backend"] == "auto"
    assert {"platform", "cpu_count", "mlx", "openblas_loaded"} <= report["machine"].keys()
    assert report["roofline"]["gemm_gflops"] > 0 and report["roofline"]["copy_gbps"] > 0
    assert all(n > 0 for n in report["params"].values())
    floor = report["floors"]["1"]
    assert floor["encoder_ms"] > 0 and floor["prefill_ms"] > 0 and floor["decode_ms_per_token"] > 0

    assert set(report["results"]) == {"ours", "ours-low-memory", "mlx-audio"}
    for impl, result in report["results"].items():
        stages = result["stages"]["1"]
        assert all(stages[key] > 0 for key in STAGES), (impl, stages)
        # the same prompt layout in both: 25 text ids + the audio rows
        assert stages["prompt_positions"] == floor["prompt_positions"] == 25 + stages["audio_rows"]
        assert result["peak_rss_mb"] > 0 and result["weights_mb"] > 0 and result["mlx_peak_mb"] > 0
        assert result["backends"]["decoder"] == result["decode_backend"] in ("mlx", "numpy"), impl
    assert report["results"]["ours"]["weights_mb"] == pytest.approx(report["results"]["mlx-audio"]["weights_mb"])
    for impl in ("ours-low-memory", "mlx-audio"):  # same-run ratios against ours
        want = report["results"][impl]["stages"]["1"]["total_ms"] / report["results"]["ours"]["stages"]["1"]["total_ms"]
        assert report["ratios"][impl]["1"]["total_ms"] == pytest.approx(want)
    # the low-memory option halves the audio weights and nothing else
    audio = (report["params"]["encoder"] + report["params"]["adaptor"]) * 2 / 2**20
    low = report["results"]["ours-low-memory"]["weights_mb"]
    assert low == pytest.approx(report["results"]["ours"]["weights_mb"] - audio)


def test_both_models_get_identical_random_weights():
    pytest.importorskip("mlx_audio")
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_audio.stt.models.fun_asr_nano import Model as PeerModel

    args = workload.model_args(tiny=True)
    ours, peer = Model(args), PeerModel(impls.peer_config(args))
    workload.fill_random(ours, 0, mx.float32)
    workload.fill_random(peer, 0, mx.float32)
    theirs = dict(tree_flatten(peer.parameters()))
    mine = dict(tree_flatten(ours.parameters()))
    assert mine.keys() == theirs.keys()
    assert all(mx.array_equal(v, theirs[k]).item() for k, v in mine.items())
