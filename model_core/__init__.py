"""Model code of dora-funasr-nano: audio I/O, VAD, speech models. No dora imports here."""
