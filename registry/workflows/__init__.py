"""User-level workflows, one module each: push, bases, resolve, ingest, merge, verify, publish.

Each takes a `registry.core.Core` (database, store, settings, actor), never the whole Registry,
so `Registry` methods, job tasks and the HTTP API all run the same code. Nothing here imports
torch at module level: merge and verify import the engines inside their functions.
"""
