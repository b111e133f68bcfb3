"""The conservation table: LRP-0 conserves at every node without biases; with biases each layer absorbs
exactly its biases' share, computed here from the gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrpjax
from conftest import normalized_images, random_variables
from lrpjax.core import composites

LRP0 = composites.get("epsilon", epsilon=0.0, stabilizer=0.0)  # division by zero gives zero


def tiny_vgg(bias_scale, seed):
    model = lrpjax.vgg11(num_classes=4, width=1 / 16, pool_to=None, input_size=32, param_dtype=jnp.float64)
    return model, random_variables(model, seed=seed, bias_scale=bias_scale)


def test_lrp0_without_biases_conserves_at_every_layer():
    model, variables = tiny_vgg(0.0, seed=1)
    images = normalized_images(1, 32, seed=2)  # the shape of the next test's: one compilation for both
    out = lrpjax.explain_full(model, variables, images, [1], LRP0, return_layers=True)
    table = lrpjax.conservation(out, model)
    assert table.layers == tuple(spec.name for spec in model.layers)
    np.testing.assert_allclose(table.output, np.asarray(out.logits)[:, 1], rtol=1e-15)
    print(table)
    assert np.abs(table.ratio - 1).max() <= 1e-12 and np.abs(table.absorbed).max() <= 1e-12
    assert str(table).count("\n") == len(model.layers) + 1



def test_with_biases_each_layer_absorbs_its_biases_share_from_the_gradient():
    r"""Under LRP-0 the relevance at a layer's output is :math:`R_j = z_j \, \partial f / \partial z_j`, so the
    biases take :math:`\sum_j b_j R_j / z_j = \sum_j b_j \, \partial f / \partial b_j`."""
    model, variables = tiny_vgg(0.1, seed=4)
    images = normalized_images(1, 32, seed=5)
    out = lrpjax.explain_full(model, variables, images, [2], LRP0, return_layers=True)
    table = lrpjax.conservation(out, model)
    logit = float(out.logits[0, 2])
    gradient = jax.jit(jax.grad(lambda params: model.apply({"params": params}, images)[0, 2]))(variables["params"])
    for row, (name, kind) in enumerate(zip(table.layers, table.kinds)):
        expected = 0.0
        if kind in ("conv", "dense"):
            expected = float((np.asarray(gradient[name]["bias"]) * np.asarray(variables["params"][name]["bias"])).sum())
        np.testing.assert_allclose(table.absorbed[row, 0], expected / logit, rtol=0, atol=1e-10, err_msg=name)
    assert np.abs(table.absorbed).max() > 1e-3  # the biases do take a share here
    np.testing.assert_allclose(table.ratio[0], 1 - table.absorbed.sum(axis=0), atol=1e-12)
    with pytest.raises(ValueError, match="return_layers=True"):
        lrpjax.conservation(out._replace(layers={}), model)
