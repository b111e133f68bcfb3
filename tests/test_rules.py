"""Every rule re-derived in matrix form (float64) on small random dense and conv layers.

The references are written from the contribution matrix C[j, k] (how much input j
adds to output k) and the rule's formula, with the layer as an explicit matrix M
(a conv's matrix is its Jacobian), independently of how the rules are coded.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrpjax.core import layers as L
from lrpjax.core import rules as R
from lrpjax.core.stabilizers import Stabilizer

jax.config.update("jax_enable_x64", True)

TOLERANCE = 1e-10
CONV_SHAPE = (1, 5, 4, 3)  # one image, 5x4 pixels, 3 channels


def sign0(z):
    return np.where(z >= 0, 1.0, -1.0)


def stab(z, eps=1e-6):
    return z + eps * sign0(z)


def pos(a):
    return np.maximum(a, 0)


def neg(a):
    return np.minimum(a, 0)


def propagate(contributions, denominator, relevance):
    """R_j = sum_k C[j, k] R_k / denominator_k (0 where the denominator is exactly 0)."""
    safe = np.where(denominator == 0, 1, denominator)
    return contributions @ np.where(denominator == 0, 0, relevance / safe)


def dense_layer(seed, n_in=7, n_out=5):
    rng = np.random.default_rng(seed)
    params = {"kernel": rng.normal(size=(n_in, n_out)), "bias": rng.normal(size=n_out) * 0.5}
    layer = R.Layer("dense", "fc", lambda x, p: L.dense(x, p["kernel"], p.get("bias")), _jnp(params))
    return layer, params["kernel"], params["bias"], (1, n_in)


def conv_layer(seed, out_channels=2):
    rng = np.random.default_rng(seed)
    params = {"kernel": rng.normal(size=(3, 3, CONV_SHAPE[-1], out_channels)),
              "bias": rng.normal(size=out_channels) * 0.5}
    layer = R.Layer("conv", "conv", lambda x, p: L.conv2d(x, p["kernel"], p.get("bias")), _jnp(params))
    return layer, *conv_matrix(params), CONV_SHAPE


def conv_matrix(params):
    """The conv as a matrix M [inputs, outputs] and its bias per output, from the Jacobian."""
    linear = lambda x: L.conv2d(x, jnp.asarray(params["kernel"]))
    x0 = jnp.zeros(CONV_SHAPE)
    out_shape = linear(x0).shape
    jacobian = jax.jacobian(linear)(x0).reshape(int(np.prod(out_shape)), -1)
    bias = np.broadcast_to(params["bias"], out_shape).ravel()
    return np.asarray(jacobian).T, bias


def _jnp(params):
    return {k: jnp.asarray(v) for k, v in params.items()}


def run_rule(rule, layer, x, relevance, nonnegative):
    x = jnp.asarray(x)
    z = layer.apply(x, layer.params)
    out = rule(layer._replace(nonnegative_input=nonnegative), x, z, jnp.asarray(relevance).reshape(z.shape))
    return np.asarray(out).ravel()


# ---- references: (x, M, b, R, extra) -> relevance, written from C ----

def ref_epsilon(x, M, b, R_out, eps=1e-6):
    C = x[:, None] * M
    return propagate(C, stab(C.sum(0) + b, eps), R_out)


def ref_zplus(x, M, b, R_out):
    C = pos(x)[:, None] * pos(M) + neg(x)[:, None] * neg(M)
    return propagate(C, stab(C.sum(0) + pos(b)), R_out)


def ref_alpha_beta(x, M, b, R_out, alpha=2.0, beta=1.0):
    C_pos = pos(x)[:, None] * pos(M) + neg(x)[:, None] * neg(M)
    C_neg = pos(x)[:, None] * neg(M) + neg(x)[:, None] * pos(M)
    return (alpha * propagate(C_pos, stab(C_pos.sum(0) + pos(b)), R_out)
            - beta * propagate(C_neg, stab(C_neg.sum(0) + neg(b)), R_out))


def ref_gamma(x, M, b, R_out, gamma=0.25, zero_bias=False):
    up, down = M + gamma * pos(M), M + gamma * neg(M)
    C_up = pos(x)[:, None] * up + neg(x)[:, None] * down
    C_down = pos(x)[:, None] * down + neg(x)[:, None] * up
    z = x @ M + b  # the output's sign decides, with its bias, even when the views drop it (as Zennit)
    b = 0 * b if zero_bias else b
    return (propagate(C_up, stab(C_up.sum(0) + b + gamma * pos(b)), R_out * (z > 0))
            + propagate(C_down, stab(C_down.sum(0) + b + gamma * neg(b)), R_out * (z < 0)))


def ref_simple_gamma(x, M, b, R_out, gamma=0.25):
    C = x[:, None] * (M + gamma * pos(M))
    return propagate(C, stab(C.sum(0) + b + gamma * pos(b)), R_out)


def ref_zbox(x, M, b, R_out, low=-1.5, high=2.0):
    C = x[:, None] * M - low * pos(M) - high * neg(M)
    return propagate(C, stab(C.sum(0)), R_out)


def ref_flat(x, M, b, R_out):
    C = (M != 0).astype(float)
    return propagate(C, stab(C.sum(0)), R_out)


def ref_wsquare(x, M, b, R_out):
    C = M**2
    return propagate(C, stab(C.sum(0) + b**2), R_out)


def ref_gradient(x, M, b, R_out):
    return M @ R_out


def ref_epsilon_rms(x, M, b, R_out):
    z = x @ M + b
    return propagate(x[:, None] * M, z + 1e-9 + 0.25 * np.sqrt(np.mean(z**2)), R_out)


CASES = [
    ("epsilon", R.Epsilon(), ref_epsilon),
    ("epsilon_0.1", R.Epsilon(0.1), lambda *a: ref_epsilon(*a, eps=0.1)),
    ("epsilon_rms", R.epsilon_rms(0.25, 1e-9), ref_epsilon_rms),
    ("zplus", R.ZPlus(), ref_zplus),
    ("alpha2_beta1", R.AlphaBeta(2, 1), ref_alpha_beta),
    ("alpha1_beta0", R.AlphaBeta(1, 0), lambda *a: ref_alpha_beta(*a, alpha=1.0, beta=0.0)),
    ("gamma", R.Gamma(0.25), ref_gamma),
    ("gamma_1", R.Gamma(1.0), lambda *a: ref_gamma(*a, gamma=1.0)),
    ("simple_gamma", R.SimpleGamma(0.25), ref_simple_gamma),
    ("zbox", R.ZBox(-1.5, 2.0), ref_zbox),
    ("flat", R.Flat(), ref_flat),
    ("wsquare", R.WSquare(), ref_wsquare),
    ("gradient", R.Gradient(), ref_gradient),
    ("epsilon_no_bias", R.Epsilon(zero_params="bias"), lambda x, M, b, R: ref_epsilon(x, M, 0 * b, R)),
    ("zplus_no_bias", R.ZPlus(zero_params=("bias",)), lambda x, M, b, R: ref_zplus(x, M, 0 * b, R)),
    ("alpha2_beta1_no_bias", R.AlphaBeta(zero_params=("bias",)), lambda x, M, b, R: ref_alpha_beta(x, M, 0 * b, R)),
    ("gamma_no_bias", R.Gamma(zero_params=("bias",)), lambda x, M, b, R: ref_gamma(x, M, b, R, zero_bias=True)),
    ("wsquare_no_bias", R.WSquare(zero_params=("bias",)), lambda x, M, b, R: ref_wsquare(x, M, 0 * b, R)),
]


@pytest.mark.parametrize("nonnegative", [False, True], ids=["mixed_inputs", "nonnegative_inputs"])
@pytest.mark.parametrize("make_layer", [dense_layer, conv_layer], ids=["dense", "conv"])
@pytest.mark.parametrize("name, rule, reference", CASES, ids=[c[0] for c in CASES])
def test_rule_matches_matrix_form(name, rule, reference, make_layer, nonnegative):
    layer, M, b, shape = make_layer(seed=3)
    rng = np.random.default_rng(7)
    x = rng.normal(size=shape)
    if nonnegative:
        x = np.abs(x) * (rng.random(shape) > 0.3)  # post-ReLU: non-negative with exact zeros
    relevance = rng.normal(size=M.shape[1])
    got = run_rule(rule, layer, x, relevance, nonnegative)
    want = reference(x.ravel(), M, b, relevance)
    assert np.abs(got - want).max() <= TOLERANCE * np.abs(want).max()


def test_norm_on_average_pool_matches_matrix_form():
    pool = R.Layer("maxpool", "pool", lambda x, p: L.avg_pool(x), {})
    x = np.abs(np.random.default_rng(0).normal(size=(1, 4, 6, 2)))
    M = np.asarray(jax.jacobian(L.avg_pool)(jnp.zeros_like(x)).reshape(-1, x.size)).T
    relevance = np.random.default_rng(1).normal(size=M.shape[1])
    got = run_rule(R.Norm(), pool, x, relevance, True)
    want = ref_epsilon(x.ravel(), M, 0.0, relevance)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make_layer", [dense_layer, conv_layer], ids=["dense", "conv"])
def test_gamma_shortcut_when_relevance_vanishes_off_positive_outputs(make_layer):
    """After a ReLU, with relevance zero wherever z <= 0 (what the engine proves before it sets the flag),
    the one-view shortcut equals the full rule."""
    layer, M, b, shape = make_layer(seed=8)
    rng = np.random.default_rng(9)
    x = np.abs(rng.normal(size=shape)) * (rng.random(shape) > 0.3)
    z = x.ravel() @ M + b
    relevance = rng.normal(size=M.shape[1]) * (z > 0)
    full = run_rule(R.Gamma(0.25), layer, x, relevance, True)
    x = jnp.asarray(x)
    z = layer.apply(x, layer.params)
    short = R.Gamma(0.25)(layer._replace(nonnegative_input=True, relevance_only_where_positive=True), x, z,
                          jnp.asarray(relevance).reshape(z.shape))
    np.testing.assert_allclose(np.asarray(short).ravel(), full, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(full, ref_gamma(np.asarray(x).ravel(), M, b, relevance), rtol=1e-10, atol=1e-14)


def test_max_pool_gradient_is_winner_take_all_with_first_maximum():
    pool = R.Layer("maxpool", "pool", lambda x, p: L.avg_pool(x), {})
    x = jnp.asarray([[1.0, 3.0, 2.0, 2.0], [3.0, 0.0, 2.0, 1.0], [0, 0, 0, 0], [0, 0, 0, 0]])[None, :, :, None]
    relevance = jnp.asarray([[10.0, 20.0], [30.0, 40.0]])[None, :, :, None]
    got = R.Gradient()(pool, x, L.max_pool(x), relevance)[0, :, :, 0]
    want = np.array([[0, 10, 20, 0], [0, 0, 0, 0], [30, 0, 40, 0], [0, 0, 0, 0]], float)
    np.testing.assert_array_equal(np.asarray(got), want)
    # and it equals jax's own gradient of max pooling where the maximum is unique
    x = jax.random.normal(jax.random.key(0), (1, 6, 8, 3))
    relevance = jax.random.normal(jax.random.key(1), (1, 3, 4, 3))
    _, vjp = jax.vjp(L.max_pool, x)
    np.testing.assert_allclose(R.Gradient()(pool, x, None, relevance), vjp(relevance)[0])


@pytest.mark.parametrize("make_layer", [dense_layer, conv_layer], ids=["dense", "conv"])
def test_zplus_maps_nonnegative_relevance_to_nonnegative_relevance(make_layer):
    layer, M, _, shape = make_layer(seed=11)
    rng = np.random.default_rng(2)
    for nonnegative in (False, True):
        x = rng.normal(size=shape)
        x = np.abs(x) if nonnegative else x
        got = run_rule(R.ZPlus(), layer, x, rng.random(M.shape[1]), nonnegative)
        assert got.min() >= 0 and got.max() > 0


def test_basic_rule_views_reproduce_builtin_rules():
    layer, M, b, shape = conv_layer(seed=5)
    rng = np.random.default_rng(4)
    x, relevance = rng.normal(size=shape), rng.normal(size=M.shape[1])
    my_epsilon = R.BasicRule()
    my_zplus = R.BasicRule(
        views=(R.View(R.positive, R.positive), R.View(R.negative, R.negative, ("bias",))),
        normalize=lambda rel, outs: [R.safe_divide(rel, Stabilizer()(outs[0] + outs[1]))] * 2,
    )
    for mine, builtin in ((my_epsilon, R.Epsilon()), (my_zplus, R.ZPlus())):
        np.testing.assert_allclose(run_rule(mine, layer, x, relevance, False),
                                   run_rule(builtin, layer, x, relevance, False), rtol=1e-12, atol=1e-14)


def test_all_zero_preactivations_give_zero_relevance_not_nan():
    layer, M, _, shape = conv_layer(seed=1)
    layer = layer._replace(params={k: jnp.zeros_like(v) for k, v in layer.params.items()})
    x = np.abs(np.random.default_rng(0).normal(size=shape))
    for _, rule, _ in CASES + [("lrp0", R.Epsilon(0.0), None)]:
        for nonnegative in (False, True):
            got = run_rule(rule, layer, x, np.ones(M.shape[1]), nonnegative)
            assert np.isfinite(got).all(), rule


@pytest.mark.parametrize(
    "build, error",
    [
        (lambda: R.AlphaBeta(1, 1), ValueError),
        (lambda: R.AlphaBeta(-1, -2), ValueError),
        (lambda: R.Gamma(-0.1), ValueError),
        (lambda: R.Epsilon("small"), TypeError),
        (lambda: R.ZBox("low", 1.0), TypeError),
        (lambda: Stabilizer(-1.0), ValueError),
    ],
    ids=["alpha_minus_beta", "negative_alpha", "negative_gamma", "epsilon_string", "zbox_string",
         "negative_stabilizer"],
)
def test_bad_hyperparameters_are_refused_when_the_rule_is_built(build, error):
    with pytest.raises(error):
        build()


def test_rules_are_hashable_values():
    assert R.Gamma(0.25) == R.Gamma(0.25) and hash(R.Gamma(0.25)) == hash(R.Gamma(0.25))
    assert R.ZBox((0.0, 1.0, 2.0), 3.0) == R.ZBox(np.array([0.0, 1.0, 2.0]), 3.0)
    assert R.Epsilon(1e-6) != R.Epsilon(1e-3)
