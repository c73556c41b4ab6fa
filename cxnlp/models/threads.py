"""How many threads the encoder runs on: the cores this process may use, shared among the
processes that serve side by side, and threads that sleep while they wait.

PyTorch sizes its pool from the machine's core count, not from the cores the process is allowed
(`os.sched_getaffinity`: a container or `taskset` may give it fewer), and several service workers
each take every core. Its OpenMP threads also spin while they wait for work, which on a busy
machine burns the CPU a neighbour needs. `configure_threads` gives each process its share, and
`PASSIVE_WAIT_ENV` (set before torch is first imported: the `cxnlp` command and the service do)
makes waiting threads sleep.

>>> available_cores() >= 1
True
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

# OpenMP's wait policy, read once when torch loads its OpenMP runtime.
PASSIVE_WAIT_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
# Set CXNLP_THREADS to choose the threads per process yourself.
THREADS_ENV = "CXNLP_THREADS"


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def prefer_passive_wait() -> None:
    """Make OpenMP threads sleep while they wait (unless the user chose otherwise); effective only
    before torch is imported."""
    for name, value in PASSIVE_WAIT_ENV.items():
        os.environ.setdefault(name, value)


def configure_threads(workers: int = 1, threads: int | None = None) -> int:
    """Run torch's intra-op pool on `threads`, else $CXNLP_THREADS, else this process's share of
    the cores it may use when `workers` processes share them; return the number set."""
    import torch

    if threads is None and os.environ.get(THREADS_ENV):
        threads = int(os.environ[THREADS_ENV])
    if threads is None:
        threads = max(1, available_cores() // max(1, workers))
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    logger.info("torch runs on %d thread(s) (%d core(s) available)", threads, available_cores())
    return threads
