"""Queue throughput: claims per second with 1, 2 and 4 worker processes, on SQLite and PostgreSQL.

    .venv/bin/python bench/queue.py --jobs 2000 --workers 1,2,4 \
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Each run starts from a fresh catalog holding `--jobs` queued noop jobs; the worker processes
(multiprocessing spawn, started together on a barrier) loop on queue.claim, and with --cycle also
queue.finish, until nothing is left. Prints one line per (backend, workers) and a Markdown table.
"""

import sys

if __name__ == "queue":  # pragma: no cover
    # Any script in bench/ that imports the standard library's `queue` (torch and multiprocessing do)
    # finds this file first on sys.path: load the real module in our place; importers get that one.
    import importlib.util
    import os
    import sysconfig

    _spec = importlib.util.spec_from_file_location("queue", os.path.join(sysconfig.get_paths()["stdlib"], "queue.py"))
    _real = importlib.util.module_from_spec(_spec)
    sys.modules["queue"] = _real
    _spec.loader.exec_module(_real)
elif __name__ == "__main__":
    from _queue_bench import main  # the implementation lives beside this file, under a name that shadows nothing

    main()
