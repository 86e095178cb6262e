"""Generating text: the sampling settings and strategies, the sampler with its KV cache."""
