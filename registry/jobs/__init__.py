"""Durable jobs in the catalog database: verify, merge and publish, run by any number of workers.

queue.py holds the SQL that decides who owns a job (claim, guarded finish, rescue); retry.py the
pure retry policy; tasks.py the job kinds; worker.py the worker loop; api.py `registry.jobs`.
Importing this package imports neither torch nor the worker.
"""
