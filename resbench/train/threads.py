"""torch's CPU thread count: a setting of the whole process, so only a process's entry point
sets it (``resbench`` and ``run_bench.py`` from ``--threads``, each local search worker process
from its share of the cores); library code never does."""
from __future__ import annotations

from resbench.cli_types import MAX_THREADS
from resbench.errors import UserError, shown


def set_threads(threads: int) -> None:
    """Use ``threads`` intra-op threads in this process (0: leave torch's default)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or \
            not 0 <= threads <= MAX_THREADS:
        raise UserError(f"--threads must be an integer from 0 to {MAX_THREADS}, "
                        f"got {shown(threads)}")
    if threads:
        import torch

        torch.set_num_threads(threads)
