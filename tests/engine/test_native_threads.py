"""A serving process runs BLAS on one thread (its spinning helpers took the request threads'
cores); the web app sets this up itself."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info

from bandit.engine.native_threads import one_blas_thread


def test_every_blas_library_is_left_with_one_thread() -> None:
    np.ones((64, 8)) @ np.ones(8)  # numpy's BLAS is loaded and used
    one_blas_thread()
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas, "numpy's BLAS library was not found"
    assert {pool["num_threads"] for pool in blas} == {1}
