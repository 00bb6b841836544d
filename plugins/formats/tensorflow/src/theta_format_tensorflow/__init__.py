"""TensorFlow and Keras checkpoint formats: `keras-h5`, `keras` and `tf-checkpoint`."""

from __future__ import annotations

from collections.abc import Callable

import theta
from theta.formats import CheckpointFormat
from theta_format_tensorflow.keras_archive import KerasArchiveFormat
from theta_format_tensorflow.keras_h5 import KerasH5Format
from theta_format_tensorflow.tf_checkpoint import TFCheckpointFormat

__all__ = ["KerasArchiveFormat", "KerasH5Format", "TFCheckpointFormat"]


@theta.hookimpl
def theta_register_formats(register: Callable[[CheckpointFormat], None]) -> None:
    register(KerasH5Format())
    register(KerasArchiveFormat())
    register(TFCheckpointFormat())
