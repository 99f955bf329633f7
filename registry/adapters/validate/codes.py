"""Every validation code: what it means, whether plain peft/transformers would load the case
without a word, and the default hint. docs/VALIDATION.md is this table (a test keeps them equal)."""

from __future__ import annotations

from typing import NamedTuple


class Code(NamedTuple):
    meaning: str
    silent: str  # would plain peft / transformers have loaded it silently: "yes", "no" (it raises), "partly"
    hint: str


_SAVE = "save it again with save_pretrained (peft / transformers) or safetensors.save_file"
CODES: dict[str, Code] = {
    # safetensors files (the format's own rules)
    "ST_TOO_SMALL": Code("shorter than the 8-byte header length", "no", _SAVE),
    "ST_HEADER_TOO_LARGE": Code("the header length exceeds the limit (100 MB by default)", "no", _SAVE),
    "ST_HEADER_LENGTH": Code("the header length points past the end of the file", "no", _SAVE),
    "ST_HEADER_NOT_UTF8": Code("the header is not UTF-8", "no", _SAVE),
    "ST_HEADER_START": Code("the header does not start with '{'", "partly", _SAVE),
    "ST_HEADER_JSON": Code("the header is not valid JSON (NaN/Infinity tokens and nesting too deep included)",
                           "no", _SAVE),
    "ST_HEADER_NOT_OBJECT": Code("the header is JSON but not an object", "no", _SAVE),
    "ST_DUPLICATE_KEY": Code("two entries with the same tensor name (parsers disagree on which one wins)",
                             "partly", _SAVE),
    "ST_TOO_MANY_ENTRIES": Code("an absurd number of header entries", "yes", _SAVE),
    "ST_METADATA_TYPE": Code("__metadata__ is not an object of string to string", "no", _SAVE),
    "ST_ENTRY_MALFORMED": Code("a tensor entry lacks dtype/shape/data_offsets, has extra fields or wrong types",
                               "no", _SAVE),
    "ST_DTYPE_UNKNOWN": Code("a dtype the format does not define", "no", _SAVE),
    "ST_SHAPE_OVERFLOW": Code("the shape's element or byte count overflows 64 bits", "no", _SAVE),
    "ST_MISALIGNED": Code("a sub-byte dtype (F4, F6) whose bits do not end on a byte boundary", "no", _SAVE),
    "ST_SIZE_MISMATCH": Code("a tensor's byte span disagrees with dtype x shape", "no", _SAVE),
    "ST_OFFSETS_OVERLAP": Code("tensors overlap in the data section", "no", _SAVE),
    "ST_OFFSETS_GAP": Code("the tensors do not tile the data section in order: a gap", "no", _SAVE),
    "ST_TRUNCATED": Code("a tensor ends past the end of the file", "no", "the upload or copy was cut short"),
    "ST_TRAILING_BYTES": Code("bytes after the last tensor", "no", _SAVE),
    "ST_EMPTY": Code("the weights file holds no tensors", "yes", "save the adapter after get_peft_model"),
    # adapter weights
    "WEIGHTS_MISSING": Code("no adapter_model.safetensors", "no", "save with model.save_pretrained(dir)"),
    "WEIGHTS_NOT_FLOAT": Code("a LoRA/adapter tensor of integer or boolean dtype (peft casts it silently)", "yes",
                              "adapter weights are floating point; save them from the trained model"),
    "WEIGHTS_NONFINITE": Code("NaN or Inf values in an adapter tensor", "yes",
                              "training diverged; pick an earlier checkpoint"),
    "WEIGHTS_DORA_MAGNITUDE_MISSING": Code("use_dora is set but a module has no lora_magnitude_vector", "yes",
                                           "save the adapter with the peft version it was trained with"),
    "WEIGHTS_SHAPE": Code("an adapter tensor with the wrong number of dimensions for its role (lora_A, "
                          "magnitude, ...)", "no", "save the adapter again with peft"),
    "WEIGHTS_DUPLICATE_COPY": Code("a modules_to_save copy saved twice with different shapes", "partly",
                                   "save the adapter again with peft"),
    # adapter_config.json
    "CONFIG_MISSING": Code("no adapter_config.json", "no", "save with model.save_pretrained(dir)"),
    "CONFIG_JSON": Code("adapter_config.json is not valid JSON", "no", "write it with json.dump"),
    "CONFIG_NONSTANDARD_JSON": Code("NaN / Infinity tokens (Python's json accepts them; JSON does not)", "yes",
                                    "write finite numbers"),
    "CONFIG_TOO_DEEP": Code("nesting so deep that Python's json raises RecursionError", "no",
                            "adapter configs are flat objects"),
    "CONFIG_DUPLICATE_KEY": Code("a key given twice (the last one silently wins)", "yes", "give each field once"),
    "CONFIG_NOT_OBJECT": Code("adapter_config.json is not a JSON object", "no", "save with peft"),
    "CONFIG_PEFT_TYPE_MISSING": Code("no peft_type", "no", "save with peft"),
    "CONFIG_PEFT_TYPE_UNKNOWN": Code("a peft_type peft does not define", "no",
                                     "peft_type is one of peft.PeftType, e.g. LORA"),
    "CONFIG_PEFT_TYPE_MISMATCH": Code("peft_type names one method but the weights are another's (LoRA tensors "
                                      "under ADALORA, ...)", "partly", "write the peft_type the adapter was "
                                      "trained with"),
    "CONFIG_RANK_TYPE": Code("r is not an integer (a string, a boolean, a float)", "partly", "r is an integer"),
    "CONFIG_RANK_RANGE": Code("r is zero or negative", "no", "r is a positive integer"),
    "CONFIG_ALPHA_MISSING": Code("lora_alpha missing: peft silently uses its default, changing the scale", "yes",
                                 "write the lora_alpha the adapter was trained with"),
    "CONFIG_ALPHA_TYPE": Code("lora_alpha is not a number", "partly", "lora_alpha is a number"),
    "CONFIG_ALPHA_RANGE": Code("lora_alpha negative, NaN or infinite", "yes", "lora_alpha is a finite number >= 0"),
    "CONFIG_PATTERN_TYPE": Code("rank_pattern / alpha_pattern not an object of name to number", "partly",
                                "patterns map module names to numbers"),
    "CONFIG_TARGET_MODULES_TYPE": Code("target_modules neither a string nor a list of strings", "partly",
                                       "target_modules is a list of module names or one regex"),
    "CONFIG_TARGET_NOT_IN_BASE": Code("target_modules names a module the base does not have", "yes",
                                      "the adapter was trained on another architecture, or the name is misspelt"),
    "CONFIG_FIELD_TYPE": Code("a field of the wrong type (use_dora, modules_to_save, layers_to_transform, ...)",
                              "partly", "save the config with peft"),
    "CONFIG_BASE_PATH": Code("base_model_name_or_path with '..' components or not a string", "yes",
                             "name the base by Hub id or a plain path"),
    # the adapter folder as files
    "FOLDER_SYMLINK": Code("a symlink in an adapter folder (it points elsewhere)", "yes",
                           "copy the real files into the folder"),
    "FOLDER_SPECIAL_FILE": Code("a FIFO, device or socket where a file should be (refused unopened)", "partly",
                                "only regular files are read"),
    # against the base (push)
    "BASE_VOCAB_RESIZED": Code("LoRA on the embeddings of a resized vocabulary against the original base", "no",
                               "register the resized base (save_pretrained after resize_token_embeddings) and "
                               "push against it"),
    # base folders
    "BASE_CONFIG_JSON": Code("config.json missing, not JSON, or not an object", "no", "save with save_pretrained"),
    "BASE_NO_WEIGHTS": Code("no model.safetensors or index", "no", "save with save_pretrained"),
    "BASE_SHARDS_NO_INDEX": Code("several shards and no model.safetensors.index.json", "no",
                                 "save with save_pretrained, which writes the index beside the shards"),
    "BASE_INDEX_JSON": Code("the index is not valid JSON or has no weight_map", "no", "save with save_pretrained"),
    "BASE_INDEX_WEIGHT_MAP_TYPE": Code("weight_map is not an object of tensor name to file name", "no",
                                       "save with save_pretrained"),
    "BASE_INDEX_PATH": Code("weight_map points outside the folder ('..', absolute paths, sub-folders)", "partly",
                            "weight_map names files of the folder itself"),
    "BASE_INDEX_SHARD_MISSING": Code("a shard the index names is not there", "no", "copy every shard"),
    "BASE_INDEX_WRONG_SHARD": Code("the index names the wrong shard for a tensor, or a tensor no shard holds",
                                   "partly", "save with save_pretrained"),
    "BASE_TENSOR_DUPLICATE": Code("a tensor in two shards", "partly", "save with save_pretrained"),
    "BASE_TENSOR_MISSING": Code("a tensor the architecture needs is missing (transformers initialises it randomly)",
                                "yes", "the checkpoint is incomplete; save it again"),
    "BASE_SHAPE_CONFIG": Code("a tensor shape contradicts config.json (hidden size, vocabulary)", "partly",
                              "config.json and the weights come from different models"),
    "BASE_TOKENIZER_JSON": Code("tokenizer.json does not parse", "no", "save the tokenizer with save_pretrained"),
    "BASE_LINK_OUTSIDE": Code("a file that resolves outside the model folder (or the Hub cache repo folder)", "yes",
                              "copy the real files into the folder"),
    "BASE_SPECIAL_FILE": Code("a FIFO, device or socket in the model folder (refused unopened)", "partly",
                              "only regular files are read"),
}
