"""Thin dora nodes: parse config, move Arrow buffers, call model_core."""
