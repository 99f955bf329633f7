"""Builders of tiny real models, tokenizers and adapters for tests, benchmarks and the demo.

Nothing here downloads anything: models are built from configs with random weights and the
tokenizer is trained on a few sentences. Imports torch lazily (only when a builder is called).
"""
