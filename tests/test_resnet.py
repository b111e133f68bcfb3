"""ResNets: lrpjax against Zennit 0.5.1 with its ResNetCanonizer, the gradient identity, conservation, batching.

Torch references are plain ``torch.nn`` (:mod:`torch_resnet`) with random weights, batch norms far from the
identity and non-zero biases, converted with :func:`weights_conversion.resnet.resnet_to_variables`; one
224x224 image each, in float64. Zennit runs on a copy with every batch norm folded exactly into its conv
(:func:`torch_resnet.fold_batch_norm`; its own merge keeps ``eps`` and is ~1e-5 off), still through
``ResNetCanonizer`` so each residual sum is its ``Sum`` under ``Norm``:

* a ResNet-18 at width 0.25 (torchvision's layout: basic blocks, projection shortcuts);
* a ResNet-50 at width 0.125 (torchvision's layout; the same topology as the full network, 53 convs and 16
  residual sums, at 1/64 of its FLOPs: a full-width float64 ResNet-50 takes minutes per composite on two cores);
* a VGGFace2-layout ResNet-50 at width 0.125 (8631 classes, BGR 0-255 inputs minus the VGGFace2 mean).

Each model is explained in ONE compiled call: one forward pass, a backward pass per composite (Zennit's
EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat, EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat and, for the
ResNet-50, LRP-0). Asserted: ``max|R_lrpjax - R_zennit| <= 1e-12 max|R_zennit|`` unless Zennit's own map moves
as much under a 1e-15 perturbation of its input (see :data:`ILL_CONDITIONED`); canonized logits equal to torch's
to 1e-12 (1e-5 in float32); LRP-0 equals torch's gradient x input to 1e-12; with zero biases, relevance summed at
every residual block's input and output equals the output relevance (LRP-0: to 1e-12); a batch equals its
images one by one; new weights of the same shapes compile nothing.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import lrpjax
from conftest import logits_of
from lrpjax.core import composites, engine
from lrpjax.core.models.graph import node_inputs
from lrpjax.io.preprocess import VGGFACE2
from weights_conversion.resnet import resnet_to_variables
from weights_conversion.zennit_modules import import_zennit

try:  # pytest's default "prepend" import mode puts tests/ on sys.path
    from torch_resnet import fold_batch_norm, torch_resnet
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.torch_resnet import fold_batch_norm, torch_resnet

Z = import_zennit()
ZC = Z.composites
from zennit.torchvision import ResNetCanonizer  # noqa: E402  (after import_zennit's torchvision placeholder)

SIZE = 224
RTOL64 = 1e-12
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
NAMES_ALL = ("epsilon_gamma_box", "epsilon_plus", "epsilon_plus_flat", "epsilon_alpha2_beta1",
             "epsilon_alpha2_beta1_flat")
PERTURBATION = 1e-15
ILL_CONDITIONED = 4.0
"""Where lrpjax and Zennit differ by more than 1e-12 of max|R|, the difference must be no more than
``ILL_CONDITIONED`` times what Zennit's own map moves when its input is multiplied by ``1 + 1e-15 u``
(u uniform in [-1, 1], a few ulps). Traced node by node (Zennit's per-module relevance from tensor hooks
against ``explain_full(return_layers=True)``): the maps agree to ~5e-15 down to a residual sum whose summands
nearly cancel (e.g. ResNet-50 x0.25 seed 1, layer2.0: shortcut 0.6875223, residual -0.6875222, sum 1.1e-7, below
Norm's stabiliser 1e-6). There ``R_residual = a R / (z + 1e-6)`` with ``R`` proportional to ``z``, so the
absolute round-off of the sum's summands (~1e-16 of 0.69, different in XLA's and torch's convolutions) is
multiplied by ``a / 1e-6``: 1e-11 of max|R| before any rule is applied. Zennit against itself under the 1e-15
perturbation moves by the same amount (ResNet-50 x0.25 seed 1, lrpjax vs Zennit / Zennit vs perturbed Zennit:
epsilon_gamma_box 1.86e-11 / 2.06e-11,
epsilon_plus 4.23e-12 / 4.67e-12, epsilon_plus_flat 3.96e-12 / 4.37e-12, epsilon_alpha2_beta1 1.08e-11 / 1.20e-11,
epsilon_alpha2_beta1_flat 9.42e-12 / 1.04e-11): the map is that sensitive to round-off, whichever library
computes it. (AlphaBeta's 2.4e-10 there and VGGFace2's 1.2e-9 were lrpjax's: see ``rules.AlphaBeta``.)"""
NAMES = ["epsilon_gamma_box", "epsilon_plus", "epsilon_plus_flat", "epsilon_alpha2_beta1", "epsilon_alpha2_beta1_flat"]
LRP0 = composites.get("epsilon", epsilon=0.0, stabilizer=0.0)


def relative(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / np.abs(want).max())


def nhwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy().transpose(0, 2, 3, 1)


class Case:
    """A torch ResNet, its conversion, one image, Zennit's and lrpjax's relevance for every composite."""

    def __init__(self, depth: int, width: float, layout: str, num_classes: int, *, seed: int, lrp0: bool):
        net = torch_resnet(depth, num_classes, width=width, layout=layout, seed=seed)
        self.model, self.variables = resnet_to_variables(net.state_dict(), layout=layout)
        self.net32, self.net64, self.folded = net, copy.deepcopy(net).double(), fold_batch_norm(net)
        pixels = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
        if layout == "vggface2":  # BGR in [0, 255] minus the mean, no std
            mean, std, black, white = np.asarray(VGGFACE2["mean"]), np.ones(3), 0.0, 255.0
        else:
            mean, std, black, white = IMAGENET_MEAN, IMAGENET_STD, 0.0, 1.0
        view = lambda a: torch.tensor(a, dtype=torch.float32).view(1, 3, 1, 1)  # noqa: E731
        self.x32 = (black + (white - black) * pixels - view(mean)) / view(std)
        self.x64 = self.x32.double()
        self.low, self.high = tuple((black - mean) / std), tuple((white - mean) / std)
        with torch.no_grad():
            self.logits = self.net64(self.x64).numpy()
        self.target = int(self.logits.argmax())
        self.onehot = torch.eye(num_classes, dtype=torch.float64)[[self.target]]
        self.lrp0 = lrp0
        self.presets = [composites.get(n, **self.bounds(n)) for n in NAMES] + ([LRP0] if lrp0 else [])
        self.out = self.explain(self.variables)

    def bounds(self, name: str) -> dict:
        return {"low": self.low, "high": self.high} if name == "epsilon_gamma_box" else {}

    def explain(self, variables) -> lrpjax.Explanation:
        as64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)
        return lrpjax.explain_full(self.model, as64, jnp.asarray(nhwc(self.x64)), None, self.presets,
                                   output_relevance=jnp.asarray(self.onehot.numpy()), return_layers=True)

    def zennit(self, name: str, perturbed: bool = False) -> np.ndarray:
        """Zennit's map; ``perturbed``: of the input times ``1 + PERTURBATION u``, u uniform in [-1, 1]."""
        low, high = (torch.tensor(b, dtype=torch.float64).view(1, 3, 1, 1) for b in (self.low, self.high))
        factory = {
            "epsilon_gamma_box": lambda **kw: ZC.EpsilonGammaBox(low=low, high=high, **kw),
            "epsilon_plus": ZC.EpsilonPlus, "epsilon_plus_flat": ZC.EpsilonPlusFlat,
            "epsilon_alpha2_beta1": ZC.EpsilonAlpha2Beta1, "epsilon_alpha2_beta1_flat": ZC.EpsilonAlpha2Beta1Flat,
        }[name]
        x = self.x64.clone()
        if perturbed:
            u = torch.rand(x.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
            x = x * (1 + PERTURBATION * (2 * u - 1))
        x.requires_grad_(True)
        with Z.attribution.Gradient(self.folded, factory(canonizers=[ResNetCanonizer()])) as attributor:
            _, relevance = attributor(x, self.onehot)
        return nhwc(relevance)


CASES = {
    "resnet18_x0.25": dict(depth=18, width=0.25, layout="torchvision", num_classes=1000, seed=0, lrp0=False),
    "resnet50_x0.125": dict(depth=50, width=0.125, layout="torchvision", num_classes=1000, seed=1, lrp0=True),
    "vggface2_resnet50_x0.125": dict(depth=50, width=0.125, layout="vggface2", num_classes=8631, seed=2,
                                     lrp0=False),
}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def case(request) -> Case:
    return Case(**CASES[request.param])


def test_zennit_parity_and_logits(case):
    """Every composite at 1e-12 against Zennit with ResNetCanonizer; canonized logits at 1e-12 (1e-5 float32)."""
    logits_error = relative(case.out.logits, case.logits)
    logits = logits_of(case.model)
    apply_error = relative(logits(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), case.variables),
                                  jnp.asarray(nhwc(case.x64))), case.logits)
    with torch.no_grad():
        want32 = case.net32(case.x32).numpy()
    got32 = logits(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), case.variables), jnp.asarray(nhwc(case.x32)))
    float32_error = relative(got32, want32)
    print(f"\n{case.model.layout} resnet{case.model.depth} x{case.model.width}: logits canonized {logits_error:.1e}, "
          f"flax with batch norm {apply_error:.1e}, float32 {float32_error:.1e}")
    assert logits_error <= 1e-12 and apply_error <= 1e-12 and float32_error <= 1e-5
    for name, ours in zip(NAMES, case.out.relevance):
        want = case.zennit(name)
        error = relative(ours, want)
        if error <= RTOL64:
            print(f"  {name:28s} max|dR|/max|R| = {error:.2e}")
            continue
        moved = relative(case.zennit(name, perturbed=True), want)  # see ILL_CONDITIONED
        print(f"  {name:28s} max|dR|/max|R| = {error:.2e}; Zennit vs Zennit at x(1 + 1e-15 u): {moved:.2e}")
        assert error <= ILL_CONDITIONED * moved and error <= 1e-9, name


def relevance_at_outputs(graph, layers) -> dict[str, np.ndarray]:
    """Node name -> relevance at its output: the sum of what every consumer sends back (an ``add``'s share per
    summand), from ``explain_full(return_layers=True)``'s per-node relevance at each node's input."""
    merged, out = engine.merged_graph(graph), {}
    for spec, sources in zip(merged, node_inputs(merged)):
        received = np.asarray(layers[spec.name])
        for k, source in enumerate(sources):
            share = received[:, k] if spec.kind == "add" else received
            out[source] = out[source] + share if source in out else share
    return out


def block_sums(graph, layers) -> dict[str, tuple[float, float]]:
    """Residual block prefix -> (relevance summed at its input, at its output after its last ReLU)."""
    at = relevance_at_outputs(graph, layers)
    sources = dict(zip([s.name for s in graph], node_inputs(graph)))
    blocks = [s.name[:-len("add")] for s in graph if s.kind == "add"]
    return {b: (float(at[sources[b + "conv1"][0]].sum()), float(at[b + "relu"].sum())) for b in blocks}


def test_lrp0_is_gradient_times_input_and_relevance_is_conserved_at_every_block(case):
    """LRP-0 against torch's gradient x input; with zero biases (same shapes: no recompilation) and LRP-0,
    relevance summed at every residual block's input and output equals the output relevance (1) to 1e-12: the
    sum never doubles at the add. Gamma conserves too (to its stabiliser). ZPlus and AlphaBeta do not, by
    design, in Zennit as here: they drop what an output's exactly empty positive or negative part would carry
    (measured at 32 block boundaries: epsilon_plus 8.9e-2, epsilon_alpha2_beta1 1.1); printed, not asserted."""
    if not case.lrp0:
        pytest.skip("the ResNet-50 case carries the LRP-0 composite")
    x = case.x64.clone().requires_grad_(True)
    case.net64(x)[0, case.target].backward()
    logit = float(case.logits[0, case.target])  # relevance starts at 1 (one-hot): LRP-0 is gradient x input / logit
    error = relative(case.out.relevance[-1] * logit, nhwc(x.grad * x))
    print(f"\nLRP-0 vs torch gradient x input, ResNet-50 x{case.model.width} 224 float64: {error:.2e}")
    assert error <= 1e-12

    zero = torch_resnet(50, 1000, width=case.model.width, seed=3, zero_biases=True)
    _, variables = resnet_to_variables(zero.state_dict())
    compiled = engine._compiled(case.model.layers, tuple(case.presets), "given", True)
    before = compiled._cache_size()
    out = case.explain(variables)
    assert compiled._cache_size() == before
    for name, layers, relevance in zip([*NAMES, "lrp0"], out.layers, out.relevance):
        sums = block_sums(case.model.layers, layers)
        assert len(sums) == 16
        worst = max(abs(s - 1) for pair in sums.values() for s in pair)
        total = float(relevance.sum())
        print(f"  zero biases {name:28s} max |sum R - 1| at 32 block boundaries {worst:.1e}, input {total - 1:.1e}")
        if name == "lrp0":
            assert worst <= 1e-12 and abs(total - 1) <= 1e-12
        elif name == "epsilon_gamma_box":
            assert worst <= 1e-4 and abs(total - 1) <= 1e-4


def test_batch_equals_single_images_and_bad_input():
    model = lrpjax.resnet18(4, width=0.125)
    _, variables = resnet_to_variables(torch_resnet(18, 4, width=0.125, seed=4).state_dict())
    variables = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)
    images = jax.random.normal(jax.random.key(5), (3, 64, 64, 3), jnp.float64)
    composite = composites.get("epsilon_gamma_box", low=-3.0, high=3.0)
    batch = lrpjax.explain(model, variables, images, [0, 1, 2], composite)
    for i in range(3):
        single = lrpjax.explain(model, variables, images[i:i + 1], [i], composite)
        np.testing.assert_allclose(single[0], batch[i], rtol=1e-12, atol=1e-14 * float(jnp.abs(batch).max()))
    with pytest.raises(ValueError, match="too small: ResNet"):
        lrpjax.explain(model, variables, np.zeros((1, 16, 16, 3)), [0], composite)
    with pytest.raises(ValueError, match="exactly 224x224"):
        lrpjax.explain(lrpjax.vggface2_resnet50(4, width=0.125), variables, np.zeros((1, 64, 64, 3)), [0], composite)


def test_graph_names_composites_and_facts():
    """torchvision's names; name patterns and ``first`` on graphs; facts hold only if they hold on every path."""
    graph = lrpjax.resnet50(10).layers
    names = [spec.name for spec in graph]
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"] and names[-1] == "fc"
    assert "layer2.0.downsample.0" in names and "layer4.2.conv3" in names and "layer1.0.add" in names
    add = graph[names.index("layer1.0.add")]
    assert add.inputs == ("layer1.0.downsample.1", "layer1.0.bn3")
    layer4 = ("layer4.*.conv*", "layer4.*.downsample.0")
    composite = lrpjax.Composite("c", by_name=((layer4, lrpjax.rules.ZPlus()),), first=lrpjax.rules.Flat(),
                                 by_kind=(("conv", lrpjax.rules.Gamma()),))
    merged = engine.merged_graph(graph)
    rules = dict(zip([s.name for s in merged], composite.resolve(merged)))
    assert rules["conv1"] == lrpjax.rules.Flat() and rules["layer4.0.downsample.0"] == lrpjax.rules.ZPlus()
    assert rules["layer3.1.conv2"] == lrpjax.rules.Gamma() and rules["layer1.0.add"] == lrpjax.rules.Norm()
    facts = dict(zip([s.name for s in merged], engine.known_facts(merged, composite.resolve(merged))))
    assert facts["layer1.0.conv2"] == (True, True)  # after a ReLU, read only by a ReLU
    assert facts["layer1.0.conv3"] == (True, False)  # read by the residual sum
    assert facts["layer1.0.add"] == (False, True) and facts["conv1"] == (False, True)  # summands of any sign
    assert facts["layer2.0.downsample.0"] == (True, False)
    assert lrpjax.resnet18(10).layers[-1].name == "fc" and "layer1.0.conv3" not in [
        s.name for s in lrpjax.resnet18(10).layers]
