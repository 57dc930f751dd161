import os

import numpy as np
import pytest
import torch

# Under pytest-xdist (make test runs two workers on two cores) every process, and every notebook
# kernel it starts, computes with one thread: oversubscribed OpenMP threads wait for each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["IBTOOLS_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:  # ibtools' policy: one thread unless IBTOOLS_THREADS says otherwise
    from ibtools.engine import set_threads

    set_threads()


@pytest.fixture(scope="session")
def task():
    from ibtools.data import tishby_task

    return tishby_task()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
