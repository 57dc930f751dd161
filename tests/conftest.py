import os

import numpy as np
import pytest
import torch

# Small, deterministic, and polite to a 2-core machine.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def task():
    from ibtools.data import tishby_task

    return tishby_task()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
