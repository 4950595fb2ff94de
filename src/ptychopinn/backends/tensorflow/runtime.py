"""Loading TensorFlow and Keras 3 on first use, with a clear error when they are missing.

Nothing here runs at import time: the environment variables TensorFlow reads at start-up
(log level, Keras backend) are set only when :func:`tensorflow` is first called, i.e. when the
TensorFlow backend is actually selected.
"""

from __future__ import annotations

import contextlib
import os
from types import ModuleType

INSTALL_HINT = "pip install 'ptychopinn[tensorflow]'"


class BackendUnavailableError(ImportError, ValueError):
    """The requested backend is not installed (an ImportError, and a ValueError for the CLI)."""


_LOADED: ModuleType | None = None


def tensorflow() -> ModuleType:
    """Import and return TensorFlow, with Keras 3 on its TensorFlow backend.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless the user set it) before the first import so
    TensorFlow's C++ log (start-up chatter, and a harmless oneDNN "DT_INT32 only with AVX-512"
    line Keras's ``fit`` triggers on CPUs without AVX-512) stays out of the tool's output; set
    it to 0 to see that log. On a GPU, TensorFlow takes memory as it needs it (memory growth)
    instead of all of it, so it can share the device with PyTorch. Cheap after the first call
    (the ops call it while being traced).
    """
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import tensorflow as tf
    except ImportError as error:
        raise BackendUnavailableError(
            f"the TensorFlow backend needs TensorFlow, which is not installed ({error}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    keras = _keras()
    if keras.backend.backend() != "tensorflow":
        raise BackendUnavailableError(
            f"Keras is running on the {keras.backend.backend()!r} backend; the TensorFlow backend of "
            "ptychopinn needs KERAS_BACKEND=tensorflow (set it before Keras is first imported)"
        )
    for gpu in tf.config.list_physical_devices("GPU"):
        try:  # take GPU memory as needed, not all of it (torch may share the device)
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised by the caller: keep their setting
            pass
    _LOADED = tf
    return tf


def keras() -> ModuleType:
    """Keras 3, after :func:`tensorflow` has checked it runs on TensorFlow."""
    tensorflow()
    import keras

    return keras


def _keras() -> ModuleType:
    try:
        import keras
    except ImportError as error:
        raise BackendUnavailableError(
            f"the TensorFlow backend needs Keras 3, which is not installed ({error}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    if not hasattr(keras, "version") or int(keras.version().split(".")[0]) < 3:
        raise BackendUnavailableError(f"the TensorFlow backend needs Keras 3; install it with: {INSTALL_HINT}")
    return keras


def device_scope(accelerator: str = "auto"):
    """A ``tf.device`` scope for an accelerator setting (auto | cpu | gpu | cuda).

    ``auto`` leaves placement to TensorFlow (its GPU when it sees one).
    """
    tf = tensorflow()
    accelerator = (accelerator or "auto").lower()
    if accelerator == "auto":
        return contextlib.nullcontext()
    if accelerator == "cpu":
        return tf.device("/CPU:0")
    if accelerator in ("gpu", "cuda"):
        if not tf.config.list_physical_devices("GPU"):
            raise ValueError(f"accelerator '{accelerator}' requested but TensorFlow sees no GPU")
        return tf.device("/GPU:0")
    raise ValueError(f"accelerator {accelerator!r} is not available with the tensorflow backend: "
                     "use auto, cpu, gpu or cuda")


def describe_device(accelerator: str = "auto") -> str:
    tf = tensorflow()
    accelerator = (accelerator or "auto").lower()
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and tf.config.list_physical_devices("GPU")):
        return "gpu:0"
    return "cpu"


def default_jit_compile() -> bool:
    """XLA on a GPU, not on CPU (Keras's own ``jit_compile="auto"`` rule)."""
    return bool(tensorflow().config.list_physical_devices("GPU"))
