"""The suite's peers: seawall and what a user would pick instead, one module each.

A peer module has a caller side and, where it needs processes of its own, a server side:

* ``make_caller(variant, settings) -> caller``, run in a caller process of its own
  (``peers/caller.py``), with ``caller.measure(workload, callers, window)`` (call the
  workload from ``callers`` concurrent callers until the window closes),
  ``caller.own_pids()`` (processes the caller started itself, by role) and ``caller.close()``;
* ``servers(directory, worker_processes)``, a context manager run in the suite's process
  that starts the peer's servers, yields :class:`peers.processes.Servers` (the settings
  its caller needs and the pids by role), and stops every one of them by pid.
"""
