"""Release management: aliases with promotion gates and history, deprecation, base-revision
impact, bulk operations, vLLM serving profiles, garbage collection, events and webhooks.

`Release` (api.py) is `Registry.release`; policy.py and serving.py are pure functions. Importing
this package imports none of its modules.
"""
