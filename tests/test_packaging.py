"""`pip install .` (not editable) gives a working adapter-registry, migrations included."""

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    return next(out.glob("adapter_registry-*.whl"))


def test_wheel_installs_cli_and_migrations_under_the_registry_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"registry", next(t for t in top if t.endswith(".dist-info"))}
    assert "registry/cli/__init__.py" in names
    assert "registry/migrations/env.py" in names and "registry/migrations/script.py.mako" in names
    assert any(n.startswith("registry/migrations/versions/0001_") for n in names)
    ep = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "adapter-registry = registry.__main__:main" in ep


def test_installed_command_runs_outside_the_checkout(wheel, tmp_path, tiny_adapter):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python*/site-packages"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    # dependencies come from the test environment, after the fresh install on sys.path
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "ADAPTER_REGISTRY_HOME": str(tmp_path / "home"),
           "HOME": str(tmp_path)}
    py = venv / "bin" / "python"
    where = subprocess.run([py, "-c", "import registry, sys; print(registry.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site))
    for mod in ("cli", "migrations"):
        r = subprocess.run([py, "-c", f"import {mod}"], cwd=tmp_path, env=env, capture_output=True)
        assert r.returncode != 0, f"a top-level {mod!r} module was installed"
    exe = site / "bin" / "adapter-registry"
    cmd = [str(exe)] if exe.exists() else [str(py), "-m", "registry"]
    if exe.exists():
        exe.chmod(0o755)
        cmd = [str(py), str(exe)]
    r = subprocess.run([*cmd, "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*cmd, "push", str(tiny_adapter), "--name", "bot"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "created bot@1" in r.stdout, r.stderr


def test_python_m_registry_works_from_the_checkout(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "ADAPTER_REGISTRY_HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, "-m", "registry", "--help"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "push" in r.stdout
