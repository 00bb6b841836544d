from collections.abc import Iterator

import numpy as np
import pytest

from theta.errors import ThetaError
from theta.formats import TensorInfo
from theta.tensors import Tensor
from theta.testing import Change, UpdateTypeContract
from theta.testing.samples import in_dtype
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


class TestDenseContract(UpdateTypeContract):
    update_type_name = "dense"

    def friendly_changes(self) -> Iterator[Change]:
        values = np.random.default_rng(1).standard_normal((32, 16))
        for dtype in ("float32", "float16", "bfloat16", "float64"):
            yield Change(label=f"a {dtype} weight", tensor=in_dtype(values, dtype), base=None)
        yield Change(label="int64 counts", tensor=Tensor.from_numpy(np.arange(40, dtype=np.int64)), base=None)
