"""Release management: aliases with promotion gates and history, deprecation, base-revision
impact, bulk operations, vLLM serving profiles, garbage collection, events and webhooks.

`ReleaseMixin` (api.py) adds these to `Registry`; policy.py and serving.py are pure functions.
"""

from registry.release.api import ReleaseMixin

__all__ = ["ReleaseMixin"]
