"""Registry and registry.Client keep one contract (registry/protocol.py): same method names, same
parameters (names, kinds, defaults, annotations), for the whole registry, its jobs and release."""

from __future__ import annotations

import inspect

import pytest

from registry.protocol import PROTOCOLS, methods


def _pairs():
    from registry.app import Registry
    from registry.client import Client, _RemoteJobs, _RemoteRelease
    from registry.jobs.api import JobsAPI
    from registry.release.api import Release

    return {"": (Registry, Client), "jobs": (JobsAPI, _RemoteJobs), "release": (Release, _RemoteRelease)}


def _shape(fn) -> list[tuple[str, str, str, str]]:
    sig = inspect.signature(fn)
    params = [(p.name, p.kind.name, repr(p.default), " ".join(str(p.annotation).split()))
              for p in sig.parameters.values()]
    return [*params, ("->", "", "", " ".join(str(sig.return_annotation).split()))]


@pytest.mark.parametrize("part", list(PROTOCOLS))
def test_local_and_remote_signatures_equal_the_protocol(part):
    local, remote = _pairs()[part]
    proto = PROTOCOLS[part]
    for name in methods(proto):
        want = _shape(getattr(proto, name))
        assert _shape(getattr(local, name)) == want, f"{local.__name__}.{name} differs from the protocol"
        assert _shape(getattr(remote, name)) == want, f"{remote.__name__}.{name} differs from the protocol"


def test_the_protocol_properties_are_there():
    from registry.app import Registry
    from registry.client import Client

    for cls in (Registry, Client):
        for prop in ("jobs", "release"):
            assert prop in cls.__init__.__code__.co_names or hasattr(cls, prop), (cls, prop)


def test_a_signature_difference_is_caught():
    """The comparison itself is not blind: a changed default and a renamed parameter differ."""
    def a(self, ref: str, *, dtype: str | None = None) -> int: ...
    def b(self, ref: str, *, dtype: str | None = "bf16") -> int: ...
    def c(self, name: str, *, dtype: str | None = None) -> int: ...
    assert _shape(a) != _shape(b) and _shape(a) != _shape(c)
