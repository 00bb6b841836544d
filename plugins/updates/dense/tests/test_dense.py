import numpy as np
import pytest

from theta.errors import ThetaError
from theta.formats import TensorInfo
from theta.tensors import Tensor
from theta_update_dense import DenseUpdate


def test_round_trip_is_exact() -> None:
    tensor = Tensor.from_numpy(np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32))
    update = DenseUpdate().encode(tensor, None)
    decoded = DenseUpdate().decode(update, None, TensorInfo(dtype="float32", shape=(5, 7)))
    assert decoded.sha256() == tensor.sha256()


def test_layout_mismatch_is_an_error() -> None:
    update = DenseUpdate().encode(Tensor.from_numpy(np.zeros(4, np.float32)), None)
    with pytest.raises(ThetaError, match="expected float32 \\[2, 2\\]"):
        DenseUpdate().decode(update, None, TensorInfo(dtype="float32", shape=(2, 2)))
