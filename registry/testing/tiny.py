"""Tiny Hugging Face models, tokenizers and PEFT adapters, built locally from configs.

Used by the tests, the benchmarks and the `make run` demo. Never downloads anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from registry.errors import InvalidInput

CORPUS = [
    "the adapter registry keeps every lora adapter in one catalog",
    "merge the adapter into its base model and ship it",
    "a frozen base model with a low rank update",
    "hello world, this is a tiny tokenizer for tests",
    "production staging canary aliases versions digests",
] * 4

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_tokenizer(out: Path, *, vocab_size: int = 256) -> Path:
    """Train a tiny byte-level BPE tokenizer and save it as a transformers fast tokenizer.

    `vocab_size` is the trainer's target: it never goes below the 256 byte symbols plus the 4
    special tokens, so the smallest tokenizer has 260 tokens (`tokenizer_size` reads it back).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return out


def tokenizer_size(folder: Path) -> int:
    """len(tokenizer) of the tokenizer saved in `folder` (ids run 0..n-1)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size(with_added_tokens=True)


def _vocab(out: Path, vocab_size: int | None, with_tokenizer: bool) -> int:
    """The model's vocabulary: the tokenizer's size unless given; never smaller than the tokenizer.

    Converters and engines (llama.cpp's convert_hf_to_gguf.py, vLLM) refuse a tokenizer with ids
    past the embedding matrix, so the tokenizer is built first and the model sized to hold it.
    """
    if not with_tokenizer:
        return vocab_size or 256
    build_tokenizer(out, vocab_size=vocab_size or 256)
    n = tokenizer_size(out)
    if vocab_size is not None and vocab_size < n:
        raise InvalidInput(f"vocab_size {vocab_size} is smaller than the tiny tokenizer's {n} tokens")
    return vocab_size or n


def build_llama(
    out: Path,
    *,
    dtype: str = "float32",
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    vocab_size: int | None = None,
    tie_word_embeddings: bool = False,
    max_shard_size: str | int | None = None,
    seed: int = 0,
    with_tokenizer: bool = True,
) -> Path:
    """Build a tiny random Llama-style causal LM (optionally sharded) with a tokenizer.

    `vocab_size` None: exactly the tokenizer's number of tokens (256 without a tokenizer).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab_size = _vocab(out, vocab_size, with_tokenizer)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        vocab_size=vocab_size,
        max_position_embeddings=128,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(cfg).to(getattr(torch, dtype)).eval()
    _save_model(model, out, max_shard_size)
    return out


def build_gpt2(
    out: Path,
    *,
    dtype: str = "float32",
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    vocab_size: int | None = None,
    seed: int = 0,
    with_tokenizer: bool = True,
) -> Path:
    """Build a tiny random GPT-2 (Conv1D layers, tied embeddings) with a tokenizer.

    `vocab_size` None: exactly the tokenizer's number of tokens (256 without a tokenizer).
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab_size = _vocab(out, vocab_size, with_tokenizer)
    torch.manual_seed(seed)
    cfg = GPT2Config(
        n_embd=n_embd, n_layer=n_layer, n_head=n_head, vocab_size=vocab_size, n_positions=128,
        bos_token_id=1, eos_token_id=2,
    )
    model = GPT2LMHeadModel(cfg).to(getattr(torch, dtype)).eval()
    _save_model(model, out, None)
    return out


def _save_model(model: Any, out: Path, max_shard_size: str | int | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out, **kwargs)


def build_adapter(
    base: Path,
    out: Path,
    *,
    target_modules: list[str] | str | None = None,
    r: int = 4,
    lora_alpha: float = 8,
    seed: int = 1,
    scale: float = 0.05,
    adapter_dtype: str | None = None,
    **lora_kwargs: Any,
) -> Path:
    """Create a PEFT LoRA adapter for `base` with random (non-zero) A and B, and save it.

    `scale` sets the std of the random weights so that the adapter changes outputs measurably.
    Extra keyword arguments go to `peft.LoraConfig` (use_dora, use_rslora, rank_pattern,
    modules_to_save, trainable_token_indices, lora_bias, init_lora_weights, ...).
    `adapter_dtype` ("bfloat16", "float16") casts the saved tensors.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    if target_modules is None:
        mt = model.config.model_type
        target_modules = ["c_attn", "c_proj", "c_fc"] if mt == "gpt2" else LLAMA_TARGETS
    cfg = LoraConfig(
        r=r, lora_alpha=lora_alpha, target_modules=target_modules, task_type="CAUSAL_LM",  # type: ignore[arg-type]  # peft takes float alphas
        init_lora_weights=lora_kwargs.pop("init_lora_weights", True), **lora_kwargs,
    )
    pm = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_" in name or "trainable_tokens" in name:
                p.copy_(torch.randn_like(p) * scale)
            elif "lora_magnitude_vector" in name:
                p.mul_(1 + 0.1 * torch.randn_like(p))
            elif "modules_to_save" in name:
                p.add_(torch.randn_like(p) * scale)
    out.mkdir(parents=True, exist_ok=True)
    pm.save_pretrained(str(out))
    # The config must name the folder the base really came from (tests move things around).
    cfg_path = out / "adapter_config.json"
    conf = json.loads(cfg_path.read_text())
    conf["base_model_name_or_path"] = str(base)
    cfg_path.write_text(json.dumps(conf, indent=2, sort_keys=True))
    if adapter_dtype:
        _cast_adapter(out, adapter_dtype)
    return out


def _cast_adapter(out: Path, dtype: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    f = out / "adapter_model.safetensors"
    sd = load_file(f)
    sd = {k: v.to(getattr(torch, dtype)) if v.is_floating_point() else v for k, v in sd.items()}
    save_file(sd, f, metadata={"format": "pt"})


def write_trainer_output(adapter: Path, out: Path, *, steps: tuple[int, ...] = (10, 20)) -> Path:
    """Lay out a Trainer-style output folder: checkpoint-N/ adapters plus trainer_state.json."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    log = [{"step": s, "loss": round(2.0 / (1 + i), 4), "learning_rate": 1e-4, "epoch": i + 1.0}
           for i, s in enumerate(range(1, steps[-1] + 1))]
    for s in steps:
        ck = out / f"checkpoint-{s}"
        shutil.copytree(adapter, ck)
        state = {"global_step": s, "epoch": float(s), "log_history": [x for x in log if x["step"] <= s],
                 "train_batch_size": 4, "num_train_epochs": 3, "max_steps": steps[-1]}
        (ck / "trainer_state.json").write_text(json.dumps(state, indent=2))
    return out


def train_trainer_output(base: Path, out: Path, *, max_steps: int = 4, save_steps: int = 2,
                         save_model: bool = True, best_first: bool = True) -> Path:
    """Really train a LoRA on `base` with transformers' Trainer and leave what it writes in `out`.

    checkpoint-N/ every `save_steps` (adapter, trainer_state.json, training_args.bin, optimizer
    state), then `save_model()` (the adapter and training_args.bin at the root, no trainer_state.json:
    TRL's SFTTrainer default flow). An eval at every save records a metric that is best at the
    first checkpoint (`best_first`), so trainer_state.json names a best_model_checkpoint that is not
    the last one. A few seconds on a CPU.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    vocab = model.config.vocab_size
    rows = [{"input_ids": r, "labels": r} for r in torch.randint(4, vocab, (16, 12))]
    evals = [0]

    def metrics(_pred: Any) -> dict[str, float]:
        evals[0] += 1
        return {"score": 1.0 if (evals[0] == 1) == best_first else 0.5 + 0.1 * evals[0]}

    args = TrainingArguments(
        output_dir=str(out), max_steps=max_steps, save_steps=save_steps, eval_strategy="steps", eval_steps=save_steps,
        per_device_train_batch_size=4, per_device_eval_batch_size=4, logging_steps=1, report_to=[],
        metric_for_best_model="score", greater_is_better=True, use_cpu=True, disable_tqdm=True, learning_rate=3e-4,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows[:4],
                      compute_metrics=metrics)
    trainer.train()
    if save_model:
        trainer.save_model()
    return out


def save_multi_adapter(base: Path, out: Path, names: tuple[str, ...] = ("sql", "chat"), *, seed: int = 0) -> Path:
    """`save_pretrained` of one PeftModel holding several LoRA adapters: "default" at `out`, each
    other in `out/NAME/` (peft's layout). Random non-zero weights, a different rank each."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model: Any = None
    for i, name in enumerate(names):
        cfg = LoraConfig(r=4 * (i + 1), lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        if model is None:
            model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), cfg, adapter_name=name)
        else:
            model.add_adapter(name, cfg)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_" in pname:
                p.copy_(torch.randn_like(p) * 0.05)
    model.save_pretrained(str(out), selected_adapters=list(names))
    for conf_path in out.rglob("adapter_config.json"):  # name the folder the base really is (tests move things)
        conf = json.loads(conf_path.read_text())
        conf["base_model_name_or_path"] = str(base)
        conf_path.write_text(json.dumps(conf, indent=2, sort_keys=True))
    return out


def build_added_tokens(base: Path, resized: Path, out: Path, *, tokens: tuple[str, ...] = ("<tool>", "</tool>"),
                       target_modules: list[str] | None = None, seed: int = 3, scale: float = 0.05,
                       modules_to_save: list[str] | None = None) -> tuple[Path, Path]:
    """The added-tokens recipe: special tokens added, resize_token_embeddings, LoRA with
    modules_to_save=["embed_tokens", "lm_head"], saved by peft. Returns (resized base, adapter).

    The resized base is saved (model and tokenizer) as a base of its own; peft writes the copies
    as `...modules_to_save.weight`, `...original_module.weight` and the plain `...weight`.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(base)
    tok.add_special_tokens({"additional_special_tokens": list(tokens)})
    model = AutoModelForCausalLM.from_pretrained(base)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    resized.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(resized)
    tok.save_pretrained(resized)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=target_modules or ["q_proj", "v_proj"], task_type="CAUSAL_LM",
                     modules_to_save=modules_to_save or ["embed_tokens", "lm_head"])
    pm = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * scale)
            elif "modules_to_save" in name:
                p.add_(torch.randn_like(p) * scale)
    out.mkdir(parents=True, exist_ok=True)
    pm.save_pretrained(str(out))
    tok.save_pretrained(out)
    cfg_path = out / "adapter_config.json"
    conf = json.loads(cfg_path.read_text())
    conf["base_model_name_or_path"] = str(resized)
    cfg_path.write_text(json.dumps(conf, indent=2, sort_keys=True))
    return resized, out
