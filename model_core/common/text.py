"""Untrusted text (transcripts, hotwords, replies) made safe to place inside a chat prompt or print to a terminal.

A transcript is whatever someone near the microphone said, or whatever a foreign node sent. Chat templates render
the prompt as one string that the tokenizer then parses *with* its special tokens (mlx-lm / transformers and
llama.cpp both do), so a literal `<|im_end|>` inside a transcript would close the user turn and let the text
that follows act as a system or assistant turn. Control characters (ANSI escapes, NUL) and bidi overrides (text
that displays differently from how it reads) have no place in speech either.
"""

from __future__ import annotations

import re
import unicodedata

# Chat-template markup of the common families: ChatML/Qwen (<|im_start|>, <|endoftext|>, <|fim_prefix|> ...) and
# Llama 3 (<|eot_id|>) share the <|name|> form; Llama 2 / Mistral ([INST], <<SYS>>, <s>), Gemma (<start_of_turn>).
CHAT_TOKENS = re.compile(
    r"<\s*\|[^<>|\n]{0,64}\|\s*>|\[/?INST\]|<<\s*/?SYS\s*>>|<\s*/?s\s*>|<\s*/?(?:start|end)_of_turn\s*>",
    re.IGNORECASE,
)
# formatting characters that change how text displays, not what it says: bidi marks, embeddings, overrides and
# isolates, the zero-width space, the word joiner and invisible operators, the byte-order mark. The zero-width
# (non-)joiners stay: emoji sequences and several scripts need them.
INVISIBLE = re.compile("[\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
MAX_TEXT_CHARS = 1000  # a 30 s segment holds ~150 Chinese or ~450 English characters: a longer text is not speech


def strip_controls(text: str) -> str:
    """Control characters (C0, DEL, C1) become spaces; newlines and tabs are kept."""
    return "".join(" " if unicodedata.category(c) == "Cc" and c not in "\n\t" else c for c in text)


def clean_text(text: str) -> str:
    """The text with chat-template tokens, control characters and invisible formatting characters removed
    (each becomes a space, or nothing for the invisible ones), runs of spaces collapsed and the ends stripped.
    Emoji and every script are kept."""
    text = INVISIBLE.sub("", strip_controls(text))
    previous = None
    while previous != text:  # "<|im_<|x|>end|>" would otherwise leave "<|im_end|>" behind
        previous, text = text, CHAT_TOKENS.sub(" ", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()
