"""Composites: which rule each layer gets, the presets, and their errors."""

import pytest

import lrpjax
from lrpjax.core import composites
from lrpjax.core import rules as R
from lrpjax.core.stabilizers import Stabilizer

VGG16 = lrpjax.vgg16(num_classes=10).layers


def rules_by_name(composite, chain=VGG16):
    return {spec.name: rule for spec, rule in zip(chain, composite.resolve(chain))}


def test_priority_is_name_then_index_then_first_then_kind():
    composite = lrpjax.Composite(
        by_name=(("conv2_*", R.ZPlus()),),
        by_index=(((0, 4), R.Epsilon(0.5)),),
        first=R.Flat(),
        by_kind=(("conv", R.Gamma()), ("linear", R.Epsilon()), ("maxpool", R.Norm())),
    )
    got = rules_by_name(composite)
    assert got["conv1_1"] == R.Epsilon(0.5)  # index 0 beats "first"
    assert got["conv1_2"] == R.Epsilon(0.5)
    assert got["conv2_1"] == R.ZPlus() and got["conv2_2"] == R.ZPlus()
    assert got["conv3_1"] == R.Gamma() and got["fc6"] == R.Epsilon()
    assert got["pool1"] == R.Norm() and got["relu1_1"] == R.Pass() and got["flatten"] is None


def test_first_layer_rule_and_defaults():
    got = rules_by_name(composites.get("epsilon_plus_flat"))
    assert got["conv1_1"] == R.Flat() and got["conv1_2"] == R.ZPlus() and got["fc8"] == R.Epsilon()
    assert got["pool1"] == R.Gradient() and got["avgpool"] == R.Norm() and got["drop6"] == R.Pass()
    proportional = rules_by_name(composites.get("epsilon_plus", maxpool="proportional"))
    assert proportional["pool3"] == R.Norm()


def test_epsilon_gamma_box_uses_its_bounds_and_hyperparameters():
    got = rules_by_name(composites.get("epsilon_gamma_box", low=(-1.0, -2.0, -3.0), high=2.0, gamma=0.5, epsilon=0.1))
    assert got["conv1_1"] == R.ZBox((-1.0, -2.0, -3.0), 2.0)
    assert got["conv3_3"] == R.Gamma(0.5) and got["fc7"] == R.Epsilon(0.1)


def test_tutorial_scheme():
    got = rules_by_name(composites.get("tutorial"))
    tiny = Stabilizer(1e-9, signed=False)
    assert isinstance(got["conv1_1"], R.ZBox)
    for name in ("conv1_2", "conv2_1", "conv3_3", "pool1", "pool3"):
        assert got[name] == R.SimpleGamma(0.25, tiny), name
    for name in ("conv4_1", "conv5_3", "pool4", "pool5"):
        assert got[name] == R.Epsilon(Stabilizer(1e-9, 0.25, signed=False)), name
    for name in ("fc6", "fc7", "fc8"):
        assert got[name] == R.Epsilon(tiny), name


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="epsilon_gamma_box"):
        composites.get("epsilon_gama_box")


def test_bad_keywords_are_named():
    with pytest.raises(TypeError, match="gamma"):
        composites.get("epsilon_plus", gamma=0.3)
    with pytest.raises(TypeError, match="low"):
        composites.get("epsilon_gamma_box")


def test_rules_that_do_not_fit_a_layer_are_refused():
    with pytest.raises(ValueError, match="pool1"):
        lrpjax.Composite("bad", by_name=((("pool1",), R.Gamma()),)).resolve(VGG16)
    with pytest.raises(ValueError, match="relu1_1"):
        lrpjax.Composite("bad", by_kind=(("relu", R.Epsilon()),)).resolve(VGG16)
    with pytest.raises(ValueError, match="conv1_1"):
        lrpjax.Composite("bad", by_kind=(("conv", R.Pass()),)).resolve(VGG16)
    with pytest.raises(ValueError, match="maxpool"):
        lrpjax.Composite("bad", maxpool="max")
    with pytest.raises(ValueError, match="kind"):
        lrpjax.Composite("bad", by_kind=(("convolution", R.Gamma()),))
    with pytest.raises(TypeError, match="not a lrpjax rule"):
        lrpjax.Composite("bad", by_kind=(("conv", "gamma"),))


def test_composites_are_hashable_cache_keys():
    a = composites.get("epsilon_gamma_box", low=-1.0, high=1.0)
    b = composites.get("epsilon_gamma_box", low=-1.0, high=1.0)
    assert a == b and hash(a) == hash(b)
    assert a != composites.get("epsilon_gamma_box", low=-1.0, high=2.0)


def test_get_fills_zb_bounds_from_a_checkpoints_preprocessing():
    from lrpjax.io.preprocess import VGGFACE, zbox_bounds

    metadata = {"preprocessing": dict(VGGFACE), "num_classes": 2}
    low, high = zbox_bounds(metadata)
    box = composites.get("epsilon_gamma_box", preprocessing=metadata)
    assert box == composites.get("epsilon_gamma_box", low=low, high=high)
    assert composites.get("tutorial", preprocessing=metadata) == composites.get("tutorial", low=low, high=high)
    assert composites.get("epsilon_plus", preprocessing=metadata) == composites.get("epsilon_plus")
    assert composites.get("epsilon_gamma_box", preprocessing=metadata, low=0.0) == composites.get(
        "epsilon_gamma_box", low=0.0, high=high)  # a given bound wins
    with pytest.raises(ValueError, match="lacks key"):
        composites.get("epsilon_gamma_box", preprocessing={"mean": [0, 0, 0]})
