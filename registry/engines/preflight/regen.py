"""Regenerate the preflight data files from the installed engine environments (after moving a pin).

    python -m registry.engines.preflight.regen vllm|llama.cpp

vllm: asks vLLM's own model registry which architectures implement SupportsLoRA (run inside the
engine's venv). llama.cpp: every name convert_hf_to_gguf.py registers with @ModelBase.register.
"""

from __future__ import annotations

import glob
import re
import subprocess
import sys
from pathlib import Path

from registry.engines import install

DATA = Path(__file__).parent / "data"

_VLLM_SCRIPT = """
from vllm.model_executor.models import ModelRegistry
from vllm.model_executor.models.interfaces import supports_lora
for arch in sorted(ModelRegistry.get_supported_archs()):
    try:
        cls = ModelRegistry._try_load_model_cls(arch)
    except Exception:
        continue
    if cls is not None and supports_lora(cls):
        print(arch)
"""


def vllm_architectures(root: Path) -> list[str]:
    env = install.require("vllm", root)
    assert env.python
    out = subprocess.run([env.python, "-c", _VLLM_SCRIPT], check=True, capture_output=True, text=True,
                         env={"VLLM_TARGET_DEVICE": "cpu", "PATH": "/usr/bin:/bin"})
    return [ln for ln in out.stdout.splitlines() if ln and not ln.startswith(("INFO", "WARNING"))]


def llama_cpp_architectures(root: Path) -> list[str]:
    env = install.require("llama.cpp", root)
    assert env.converters
    names: set[str] = set()
    for f in [*glob.glob(f"{env.converters}/conversion/*.py"), f"{env.converters}/convert_hf_to_gguf.py"]:
        for m in re.finditer(r"@ModelBase\.register\(([^)]*)\)", Path(f).read_text(), re.S):
            names.update(re.findall(r'"([^"]+)"', m.group(1)))
    return sorted(names)


def main(argv: list[str]) -> None:
    root = install.engines_dir()
    engine = argv[0]
    if engine == "vllm":
        names, name = vllm_architectures(root), "vllm_lora_architectures.txt"
        head = (f"# Architectures whose vLLM model class implements SupportsLoRA, vllm {install.VLLM.version}\n"
                "# (ModelRegistry + supports_lora). Regenerate: python -m registry.engines.preflight.regen vllm\n")
    else:
        names, name = llama_cpp_architectures(root), "llama_cpp_architectures.txt"
        head = ("# Architectures convert_hf_to_gguf.py registers (@ModelBase.register in convert_hf_to_gguf.py and\n"
                f"# conversion/*.py), llama.cpp vendored by llama-cpp-python {install.LLAMA_CPP.version}. Regenerate:\n"
                "# python -m registry.engines.preflight.regen llama.cpp\n")
    (DATA / name).write_text(head + "\n".join(names) + "\n")
    print(f"{len(names)} architectures -> {DATA / name}")


if __name__ == "__main__":
    main(sys.argv[1:])
