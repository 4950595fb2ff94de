"""The two backends, PyTorch (Lightning) and TensorFlow (Keras 3), behind one interface.

>>> backend = get_backend("tensorflow")   # doctest: +SKIP
>>> result = backend.train(TrainingRun(grouped, settings, scales, probe, arch, Path("run")))  # doctest: +SKIP

Each implementation is imported when it is first asked for, never at package import; asking
for TensorFlow without it installed raises
:class:`~ptychopinn.backends.tensorflow.runtime.BackendUnavailableError` naming the install
command.
"""

from __future__ import annotations

import importlib
from typing import Any

from ptychopinn.backends.base import BatchRunner, ModelBackend, TrainingResult, TrainingRun
from ptychopinn.config import Backend

__all__ = ["BatchRunner", "ModelBackend", "TrainingResult", "TrainingRun", "get_backend"]

IMPLEMENTATIONS = {
    Backend.torch: ("ptychopinn.backends.torch.backend", "TorchBackend"),
    Backend.tensorflow: ("ptychopinn.backends.tensorflow.backend", "TensorFlowBackend"),
}


def get_backend(backend: Backend | str | ModelBackend, **options: Any) -> ModelBackend:
    """The backend named ``backend`` ("torch" or "tensorflow"), or ``backend`` itself when it
    already is one. ``options`` go to the implementation (TensorFlow: ``jit_compile``)."""
    if not isinstance(backend, str):
        return backend
    try:
        name = Backend(backend)
    except ValueError:
        raise ValueError(f"unknown backend {backend!r}: use one of "
                         f"{', '.join(b.value for b in Backend)}") from None
    module_name, class_name = IMPLEMENTATIONS[name]
    return getattr(importlib.import_module(module_name), class_name)(**options)
