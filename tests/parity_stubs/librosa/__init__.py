"""Stand-in for librosa, which funasr imports at module top but never calls on the paths the parity tests use.

Only put on sys.path when the real librosa is not installed (see tests/parity.py).
"""
