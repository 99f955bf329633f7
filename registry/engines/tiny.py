"""A tiny Llama that every engine takes: a Llama-style byte-fallback BPE tokenizer, vocab = the model's.

registry/testing/tiny.py's byte-level tokenizer now fits its model's vocabulary, but it is not one
llama.cpp's converter knows (its BPE pre-tokenizer hash is unknown to convert_hf_to_gguf.py
get_vocab_base_pre), and its default head size (16) has no vLLM CPU attention kernel. This
tokenizer is what gguf-py's LlamaHfVocab converts (BPE with byte_fallback and a Sequence decoder);
the model is registry/testing/tiny.py's, with exactly this tokenizer's number of tokens. Built locally.
"""

from __future__ import annotations

import string
from pathlib import Path

SPECIALS = ("<unk>", "<s>", "</s>")


def build_tokenizer(out: Path) -> int:
    """Save the tokenizer in `out`; returns its number of tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = [*SPECIALS, *(f"<0x{b:02X}>" for b in range(256)), "\u2581",
              *string.ascii_lowercase, *(f"\u2581{c}" for c in string.ascii_lowercase)]
    vocab = {p: i for i, p in enumerate(pieces)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return len(pieces)


def build_llama(out: Path, *, seed: int = 0, hidden_size: int = 128, num_heads: int = 2, num_layers: int = 2,
                tie_word_embeddings: bool = False) -> Path:
    """A tiny random LlamaForCausalLM (float32) whose vocabulary is exactly its tokenizer's.

    Head size 64: vLLM's CPU attention has no kernel for 16 ("Unsupported CPU attention configuration").
    """
    from registry.testing.tiny import build_llama as _build

    n = build_tokenizer(out)
    return _build(out, hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_layers=num_layers,
                  num_heads=num_heads, vocab_size=n, tie_word_embeddings=tie_word_embeddings, seed=seed,
                  with_tokenizer=False)
