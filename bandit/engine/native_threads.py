"""One BLAS thread per process that serves requests or runs the loop.

OpenBLAS starts a thread per core and, between calls, keeps them spinning. A web worker's
only BLAS call is the whole-catalog pre-score, a small matrix-vector product (8 x n), and on a
2-core machine the spinning threads took the cores the request threads and PostgreSQL needed:
with them, a gunicorn worker spent 22 CPU s per 1,000 ranks and served 84 ranks/s (2 workers x
4 threads, 100k items); with one BLAS thread, 147 ranks/s for the same CPU (docs/benchmarks.md).
Concurrency here comes from processes and request threads, not from BLAS. `hitl replay`, whose
large matrix products do gain from BLAS threads, does not call this.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> None:
    """Limit every loaded BLAS library to one thread for the rest of this process."""
    threadpool_limits(limits=1, user_api="blas")
