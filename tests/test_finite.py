"""Bad numbers and bad files at the boundary: NaN/inf in images, output relevance and weights; empty batches;
pickles that are not tensors; what a killed export leaves behind."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

import lrpjax
from conftest import random_variables
from lrpjax.io import checkpoints

MODEL = lrpjax.vgg16(num_classes=3, width=1 / 16, pool_to=None, input_size=32)


@pytest.fixture(scope="module")
def variables():
    return random_variables(MODEL, seed=0, dtype=np.float32)


def test_explain_names_the_images_that_hold_nan_or_inf(variables):
    images = np.zeros((4, 32, 32, 3), np.float32)
    images[1, 3, 4, 0], images[3, 0, 0, 2] = np.nan, np.inf
    composite = lrpjax.composites.get("epsilon")
    with pytest.raises(ValueError, match=r"images holds NaN or infinite values in 2 of 4 rows \(indices 1, 3\)"):
        lrpjax.explain(MODEL, variables, images, [0, 1, 2, 0], composite)
    with pytest.raises(ValueError, match=r"images holds NaN .* \(indices 1, 3\)"):
        lrpjax.explain(MODEL, variables, jnp.asarray(images), [0, 1, 2, 0], composite)
    start = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    start[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"output_relevance holds NaN .* \(indices 2\)"):
        lrpjax.explain(MODEL, variables, np.zeros((4, 32, 32, 3), np.float32), None, composite,
                       output_relevance=start)


def test_an_empty_batch_is_refused_as_empty(variables):
    with pytest.raises(ValueError, match="images holds 0 images"):
        lrpjax.explain(MODEL, variables, np.zeros((0, 32, 32, 3), np.float32), [], lrpjax.composites.get("epsilon"))


def test_a_checkpoint_with_non_finite_weights_is_refused_at_load_naming_the_parameter(tmp_path, variables):
    params = {name: dict(layer) for name, layer in variables["params"].items()}
    params["conv2_1"]["kernel"] = params["conv2_1"]["kernel"].at[0, 0, 0, 0].set(jnp.inf)
    path = checkpoints.save(tmp_path / "ckpt", MODEL, {"params": params})
    with pytest.raises(ValueError, match=r"ckpt.*NaN or infinite values in params/conv2_1/kernel"):
        checkpoints.load(path)


def test_conversion_refuses_non_finite_weights_naming_the_key():
    torch = pytest.importorskip("torch")
    from weights_conversion.convert import convert

    try:
        from torch_vgg import torch_vgg
    except ModuleNotFoundError:
        from tests.torch_vgg import torch_vgg
    state_dict = dict(torch_vgg(16, 2, width=0.125, seed=1).state_dict())
    state_dict["features.2.bias"] = torch.full_like(state_dict["features.2.bias"], float("nan"))
    with pytest.raises(ValueError, match=r"'features.2.bias' holds NaN or infinite values"):
        convert("torchvision", state_dict)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_with_objects_other_than_tensors_is_refused_as_such(tmp_path):
    torch = pytest.importorskip("torch")
    from weights_conversion.convert import read_torch_file

    path = tmp_path / "evil.pth"
    torch.save({"weight": _Payload()}, path)
    with pytest.raises(ValueError, match="holds objects other than tensors") as caught:
        read_torch_file(path)
    assert "weights_only=False" not in str(caught.value) and "not a complete PyTorch file" not in str(caught.value)


def test_a_killed_export_leaves_no_stale_temporary_folder(tmp_path, variables):
    stale = tmp_path / ".model.tmp-99999999-deadbeef"  # what a process killed mid-save leaves (pid long gone)
    (stale / "variables").mkdir(parents=True)
    older = tmp_path / ".model.tmp-0badc0de"  # the name an earlier version used
    older.mkdir()
    checkpoints.save(tmp_path / "model", MODEL, variables)
    assert sorted(os.listdir(tmp_path)) == ["model"]
