"""Every tiny model factory builds a tokenizer that fits its model's vocabulary.

llama.cpp's convert_hf_to_gguf.py and vLLM refuse (or index past the embeddings with) a tokenizer
that has more tokens than the model's vocab_size; the tiny models are what the engine tests convert.
"""

from __future__ import annotations

import json

import pytest

from registry.errors import InvalidInput


def _factories():
    from registry.engines import tiny as engine_tiny
    from registry.testing import tiny

    return {
        "llama": lambda out: tiny.build_llama(out),
        "llama-tied": lambda out: tiny.build_llama(out, tie_word_embeddings=True),
        "llama-bf16-sharded": lambda out: tiny.build_llama(out, dtype="bfloat16", max_shard_size="100KB"),
        "gpt2": lambda out: tiny.build_gpt2(out),
        "engine-llama": lambda out: engine_tiny.build_llama(out),
        "added-tokens": lambda out: tiny.build_added_tokens(tiny.build_llama(out / "base"), out / "resized",
                                                            out / "adapter")[0],
    }


@pytest.mark.parametrize("factory", list(_factories()))
def test_every_tiny_model_has_no_more_tokens_than_its_vocabulary(factory, tmp_path):
    from transformers import AutoTokenizer

    folder = _factories()[factory](tmp_path / factory)
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    tok = AutoTokenizer.from_pretrained(folder)
    assert len(tok) <= vocab, f"{factory}: {len(tok)} tokens, vocab_size {vocab}"
    ids = tok("hello world, <tool> the adapter registry \u00e9\u4e2d")["input_ids"]
    assert max(ids) < vocab


def test_a_vocab_size_smaller_than_the_tokenizer_is_refused(tmp_path):
    from registry.testing.tiny import build_llama

    with pytest.raises(InvalidInput, match="smaller than the tiny tokenizer"):
        build_llama(tmp_path / "m", vocab_size=128)
    assert json.loads((build_llama(tmp_path / "n", vocab_size=300) / "config.json").read_text())["vocab_size"] == 300
