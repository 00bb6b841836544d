"""Real checkpoints written once per test session by TensorFlow and Keras.

TensorFlow takes seconds to import, so every test shares the files of `tf_files`; the
framework is imported inside the fixture and the helpers, never at module level.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from attrs import frozen

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARD = "ckpt-1.data-00000-of-00001"


@frozen(kw_only=True)
class Files:
    """Paths of the written checkpoints and the values the frameworks hold for them."""

    root: Path
    weights: dict[str, list[np.ndarray]]  # model name -> model.get_weights()
    checkpoints: dict[str, dict[str, np.ndarray]]  # checkpoint dir -> variable path -> value

    def path(self, relative: str) -> Path:
        return self.root / relative

    def restore(self, kind: str, prefix: Path) -> dict[str, np.ndarray]:
        return restore(kind, prefix)

    def load_weights(self, model: str, path: Path) -> list[np.ndarray]:
        return load_weights(model, path)

    def load_model(self, path: Path) -> list[np.ndarray]:
        return load_model(path)

    def model(self, name: str) -> Any:
        return MODELS[name]()

    def load_model_object(self, path: Path) -> Any:
        import keras

        return keras.models.load_model(str(path), compile=False)

    def rewrite_checkpoint(
        self, kind: str, prefix: Path, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, np.ndarray]:
        """Restore the checkpoint at `prefix`, apply `change` to its objects, write it back in place."""
        import tensorflow as tf

        objects = checkpoint_objects(kind)
        checkpoint = tf.train.Checkpoint(**objects)
        checkpoint.restore(str(prefix)).assert_consumed()
        change(objects)
        checkpoint.write(str(prefix))
        return variable_values(objects)

    @staticmethod
    def bits(values: list[np.ndarray] | dict[str, np.ndarray]) -> list[bytes]:
        return as_bits(values)


def cnn(dense_units: int = 5) -> Any:
    import keras

    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.BatchNormalization(name="norm"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(dense_units, name="head"),
        ],
        name="cnn",
    )


def transformer(dtype: str = "float32") -> Any:
    import keras

    tokens = keras.Input((8,), dtype="int32")
    x = keras.layers.Embedding(50, 16, dtype=dtype, name="embed")(tokens)
    attended = keras.layers.MultiHeadAttention(2, 8, dtype=dtype, name="attn")(x, x)
    x = keras.layers.LayerNormalization(dtype=dtype, name="ln1")(x + attended)
    hidden = keras.layers.Dense(32, activation="relu", dtype=dtype, name="ff1")(x)
    x = keras.layers.LayerNormalization(dtype=dtype, name="ln2")(
        x + keras.layers.Dense(16, dtype=dtype, name="ff2")(hidden)
    )
    x = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="pool")(x)
    return keras.Model(tokens, keras.layers.Dense(4, dtype=dtype, name="out")(x), name=f"transformer_{dtype}")


MODELS: dict[str, Callable[[], Any]] = {
    "cnn": cnn,
    "cnn_wide": lambda: cnn(dense_units=6),
    "transformer": transformer,
    "transformer_f16": lambda: transformer("float16"),
    "transformer_bf16": lambda: transformer("bfloat16"),
}


def checkpoint_objects(kind: str) -> dict[str, Any]:
    """The objects of each tf.train.Checkpoint the tests write, fresh (for save or restore)."""
    import tensorflow as tf

    if kind == "cnn":
        return {
            "model": MODELS["cnn"](),
            "step": tf.Variable(0, dtype=tf.int64),
            "flag": tf.Variable(False),
            "half": tf.Variable(tf.zeros(3, tf.float16)),
            "brain": tf.Variable(tf.zeros(4, tf.bfloat16)),
            "counts": tf.Variable(tf.zeros((2, 3), tf.int32)),
        }
    if kind == "transformer":
        return {"model": MODELS["transformer"]()}
    if kind == "sharded":
        return {f"v{i}": tf.Variable(tf.zeros((64,), tf.float32)) for i in range(4)}
    raise KeyError(kind)


def variable_values(objects: dict[str, Any]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    values: dict[str, np.ndarray] = {}
    for name, obj in objects.items():
        if isinstance(obj, tf.Variable):
            values[name] = np.asarray(obj.numpy())
        else:
            for i, weight in enumerate(obj.weights):
                values[f"{name}/{i}"] = np.asarray(weight.numpy())
    return values


def restore(kind: str, prefix: Path) -> dict[str, np.ndarray]:
    """Restore a checkpoint into fresh objects with TensorFlow; every value must be consumed."""
    import tensorflow as tf

    objects = checkpoint_objects(kind)
    tf.train.Checkpoint(**objects).restore(str(prefix)).assert_consumed()
    return variable_values(objects)


def load_weights(model: str, path: Path) -> list[np.ndarray]:
    fresh = MODELS[model]()
    fresh.load_weights(str(path))
    return [np.asarray(w) for w in fresh.get_weights()]


def load_model(path: Path) -> list[np.ndarray]:
    import keras

    return [np.asarray(w) for w in keras.models.load_model(str(path), compile=False).get_weights()]


def as_bits(values: list[np.ndarray] | dict[str, np.ndarray]) -> list[bytes]:
    """Exact comparison that works for bfloat16 too."""
    arrays = values.values() if isinstance(values, dict) else values
    return [np.ascontiguousarray(a).tobytes() for a in arrays]


def _write(root: Path) -> Files:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    weights: dict[str, list[np.ndarray]] = {}
    for name, build in MODELS.items():
        model = build()
        model.save_weights(str(root / f"{name}.weights.h5"))
        model.save(str(root / f"{name}.keras"))
        if name == "cnn":
            model.save(str(root / "cnn_legacy.h5"))  # the Keras 2 whole-model HDF5 format
        weights[name] = [np.asarray(w) for w in model.get_weights()]

    checkpoints: dict[str, dict[str, np.ndarray]] = {}
    for kind in ("cnn", "transformer", "sharded"):
        objects = checkpoint_objects(kind)
        for i, (_, obj) in enumerate(sorted(objects.items())):
            if isinstance(obj, tf.Variable):
                shape = obj.shape
                obj.assign(tf.cast(tf.reshape(tf.range(int(np.prod(shape))) + i + 1, shape), obj.dtype))
        options = None
        if kind == "sharded":
            policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=300)
            options = tf.train.CheckpointOptions(experimental_sharding_callback=policy)
        tf.train.Checkpoint(**objects).save(str(root / kind / "ckpt"), options=options)
        checkpoints[kind] = variable_values(objects)
    return Files(root=root, weights=weights, checkpoints=checkpoints)


@pytest.fixture(scope="session")
def tf_files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return _write(tmp_path_factory.mktemp("tf-files"))
