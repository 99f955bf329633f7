"""Serving engines (vLLM, llama.cpp, ...): pinned environments, preflight rules, runners, export.

Nothing in this package imports an engine: environments are built and run as subprocesses.
"""
