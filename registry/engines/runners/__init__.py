"""Scripts run by an engine's own interpreter (never imported by the registry's process).

Each reads one JSON request from the file named by argv[1] and writes one JSON answer to argv[2]:
greedy tokens and their logprobs for every prompt, without and with each adapter. They import
nothing from the registry, only the engine. registry/engines/run.py starts them.
"""
