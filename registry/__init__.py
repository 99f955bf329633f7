"""adapter-registry: a catalog of LoRA/PEFT adapters that turns them into shippable models.

    from registry import Registry, Settings
    reg = Registry(Settings.from_env())
    reg.push("out/adapter", name="team-a/support-bot", base="llama-3-8b")
    path = reg.resolve("team-a/support-bot@production")   # PeftModel.from_pretrained(base, path)
"""

from registry.app import Registry
from registry.errors import RegistryError
from registry.settings import Settings

__version__ = "0.1.0"

__all__ = ["Registry", "RegistryError", "Settings", "Client", "__version__"]


def __getattr__(name: str):
    if name == "Client":  # the HTTP client pulls in httpx; import it only when asked for
        from registry.client import Client

        return Client
    raise AttributeError(name)
