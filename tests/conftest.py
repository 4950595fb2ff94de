"""Shared fixtures: tiny simulated scans, cached per session (they are read-only)."""

from __future__ import annotations

import numpy as np
import pytest

from ptychopinn.simulation.simulate import simulate


@pytest.fixture(scope="session")
def tiny_scan():
    """N = 32, 96×96 lines object, ~250 positions, 1e5 photons."""
    return simulate("lines", size=96, n=32, step=4.0, jitter=0.5, photons=1e5, seed=1)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="module", params=["torch", "tensorflow"])
def backend(request):
    """Each backend behind one NumPy-in/NumPy-out interface (tests/helpers.py); the op,
    model and reconstruction suites that use it run once per backend, with the same assertions."""
    from helpers import ADAPTERS

    return ADAPTERS[request.param]()
