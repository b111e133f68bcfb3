"""Cross-check lrpjax's relevance against Zennit's on a user's own weights and images.

``crosscheck(WEIGHTS, IMAGES_DIR)`` loads the weights twice, into lrpjax (through
:mod:`weights_conversion`, or a converted checkpoint directory through :func:`lrpjax.io.checkpoints.load`)
and into an equivalent plain-``torch.nn`` VGG or ResNet (:mod:`weights_conversion.torch_model`,
:mod:`weights_conversion.torch_resnet`), reads and preprocesses the images with the
checkpoint's preprocessing metadata, and for each composite compares lrpjax's relevance with Zennit's
for the class the torch model predicts:

``float64`` (default)
    both sides in float64; a composite passes when ``max|R_lrpjax - R_zennit| <= rtol * max|R_zennit|``
    (``rtol = 1e-9``).
``float32``
    both sides in float32, each compared with Zennit's float64 relevance; a composite passes when lrpjax's
    error is no worse than Zennit's (``err_lrpjax <= 1.5 * err_zennit + 1e-6``, errors relative to the
    reference's largest value).

Batch norm is merged into the conv before it on both sides: lrpjax does so itself; for Zennit the
torch model is folded here (exactly, in the run's dtype), because Zennit's ``SequentialMergeBatchNorm``
keeps ``eps`` in each batch norm and so differs from an exact merge by ~1e-5 relative. A ResNet's Zennit
composites carry Zennit's ``ResNetCanonizer``, which makes each residual sum a ``Sum`` module under the
composite's rule for it (``Norm`` in the LRP composites), as lrpjax's ``add`` nodes are by default.

Command line: ``lrpjax crosscheck WEIGHTS --images DIR [--composite NAME ...] [--dtype float32]
[--format torchvision|vggface|finetuned|vggface2] [--limit N]``. torch and zennit are imported only when a
cross-check runs (``pip install torch`` and ``pip install --no-deps zennit``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrpjax.core import composites as lrp_composites
from lrpjax.core.models import VGG, ResNet
from lrpjax.io import checkpoints
from lrpjax.io.imagefiles import list_image_files
from lrpjax.io.preprocess import load_image, preprocess, preset, validate_preprocessing, zbox_bounds

ZENNIT_COMPOSITES = (
    "epsilon_gamma_box",
    "epsilon_plus",
    "epsilon_plus_flat",
    "epsilon_alpha2_beta1",
    "epsilon_alpha2_beta1_flat",
    "excitation_backprop",
    "guided_backprop",
    "deconvnet",
)
"""The default composites: Zennit's built-in composites that lrpjax's presets of the same name reproduce."""
COMPOSITES = (*ZENNIT_COMPOSITES, "epsilon", "gradient")
"""Every composite that can be cross-checked (``epsilon`` and ``gradient`` are built from Zennit's parts)."""
DTYPES = ("float64", "float32")
FORMATS = ("torchvision", "vggface", "finetuned", "vggface2")
RTOL_FLOAT64 = 1e-9
FLOAT32_FACTOR, FLOAT32_SLACK = 1.5, 1e-6


@dataclasses.dataclass(frozen=True)
class Row:
    """The comparison of one composite.

    Attributes:
      composite: the composite's name.
      dtype: ``"float64"`` or ``"float32"``.
      max_abs_diff: ``max|R_lrpjax - R_zennit|`` over all images (both in ``dtype``).
      max_rel_diff: ``max_abs_diff / max|R_zennit|``.
      pearson: Pearson correlation of the two relevance maps (all images, all pixels and channels).
      passed: float64: ``max_rel_diff <= rtol``; float32: ``lrpjax_error <= 1.5 * zennit_error + 1e-6``.
      lrpjax_error: float32 only: ``max|R_lrpjax32 - R_ref| / max|R_ref|``, ``R_ref`` Zennit's float64 relevance.
      zennit_error: float32 only: the same for Zennit's float32 relevance.
    """

    composite: str
    dtype: str
    max_abs_diff: float
    max_rel_diff: float
    pearson: float
    passed: bool
    lrpjax_error: float | None = None
    zennit_error: float | None = None


@dataclasses.dataclass
class Report:
    """What :func:`crosscheck` returns.

    Attributes:
      rows: one :class:`Row` per composite, in the order asked.
      images: the image files used.
      skipped: ``(file, reason)`` for every file of the folder that could not be used.
      targets: the class explained per image (the torch model's prediction).
      logit_rel_diff: ``max|logits_lrpjax - logits_torch| / max|logits_torch|``: lrpjax in the run's dtype,
        torch (its model without batch norm folded) in float64.
      description: the model and weights checked, in words.
    """

    rows: list[Row]
    images: list[str]
    skipped: list[tuple[str, str]]
    targets: list[int]
    logit_rel_diff: float
    description: str

    @property
    def passed(self) -> bool:
        """True when every row passed."""
        return all(row.passed for row in self.rows)

    def table(self) -> str:
        """The rows as a fixed-width text table."""
        float32 = any(row.dtype == "float32" for row in self.rows)
        head = f"{'composite':27s} {'max|dR|':>10s} {'max|dR|/max|R|':>15s} {'pearson':>18s}"
        if float32:
            head += f" {'lrpjax err':>11s} {'zennit err':>11s}"
        lines = [head + "  result", "-" * (len(head) + 8)]
        for row in self.rows:
            line = f"{row.composite:27s} {row.max_abs_diff:10.3e} {row.max_rel_diff:15.3e} {row.pearson:18.15f}"
            if float32:
                line += f" {row.lrpjax_error:11.3e} {row.zennit_error:11.3e}"
            lines.append(line + ("  pass" if row.passed else "  FAIL"))
        return "\n".join(lines)


# ----------------------------------------------------------------------------- loading weights


def detect_format(obj: Any) -> str:
    """The layout of a loaded ``.pth`` object: ``finetuned`` (wrapped or ``module.``-prefixed), ``vggface``
    (``conv1_1.weight`` present) or ``torchvision``."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        return "finetuned"
    keys = [key for key in obj if isinstance(key, str)] if isinstance(obj, Mapping) else []
    if any(key.startswith("module.") for key in keys):
        return "finetuned"
    if "conv1_1.weight" in keys:
        return "vggface"
    return "torchvision"


def load_weights(weights: str | os.PathLike[str], fmt: str | None = None, arch: str | None = None,
                 ) -> tuple[VGG | ResNet, dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """``(model, variables, metadata, torch_state_dict)`` of a ``.pth`` file or an lrpjax checkpoint directory.

    A ``.pth`` is converted in memory with :func:`weights_conversion.convert.convert` (``fmt`` auto-detected
    when None; a torchvision ResNet is ``torchvision``; the VGGFace2 port's ``.pkl`` or ``.pth`` needs
    ``vggface2``) and its state dict is returned too; a checkpoint directory gives ``None`` for it.

    Raises:
      FileNotFoundError: ``weights`` does not exist.
      ValueError: an unknown ``fmt``, a ``fmt`` given for a checkpoint directory, or weights that do not
        convert (the message names the file).
    """
    path = os.fspath(weights)
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not one of {list(FORMATS)}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights {path!r} do not exist (expected a .pth file or a checkpoint directory)")
    if os.path.isdir(path):
        if fmt is not None:
            raise ValueError(f"format={fmt!r} was given but {path!r} is a converted checkpoint directory")
        model, variables, metadata = checkpoints.load(path)
        return model, variables, metadata, None
    from weights_conversion.convert import convert, read_torch_file, unwrap_state_dict

    if fmt == "vggface2" and path.endswith((".pkl", ".pickle")):
        from weights_conversion.resnet import read_numpy_pickle

        obj = read_numpy_pickle(path)
    else:
        obj = read_torch_file(path)
    fmt = fmt or detect_format(obj)
    try:
        model, variables, metadata = convert(fmt, obj, arch)
        state_dict = unwrap_state_dict(obj)[0] if fmt == "finetuned" else dict(obj)
    except ValueError as error:
        raise ValueError(f"{path!r} (format {fmt}): {error}") from error
    return model, variables, metadata, state_dict


# ----------------------------------------------------------------------------- the torch model


# ----------------------------------------------------------------------------- images


def read_images(images_dir: str | os.PathLike[str], preprocessing: Mapping[str, Any], limit: int | None = None,
                ) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """Every readable image of a folder (sorted by name; hidden files and folders ignored), preprocessed.

    Returns ``(images [B, H, W, 3] float32, files used, [(file, reason) skipped])``; at most ``limit`` images.

    Raises:
      FileNotFoundError / NotADirectoryError: ``images_dir`` is missing or not a folder.
    """
    folder = os.fspath(images_dir)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"images folder {folder!r} does not exist")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"images folder {folder!r} is not a directory")
    batch, used, skipped = [], [], []
    listing = list_image_files(folder, recursive=False)
    skipped += listing.skipped
    for image_id in listing.ids:
        path = os.path.join(folder, image_id)
        if limit is not None and len(used) >= limit:
            break
        try:
            batch.append(np.asarray(preprocess(load_image(path), preprocessing))[0])
        except (OSError, ValueError) as error:
            skipped.append((path, str(error)))
            continue
        used.append(path)
    if not used:
        raise ValueError(f"images folder {folder!r} holds no readable image"
                         + (f" ({len(skipped)} file(s) skipped)" if skipped else ""))
    return np.stack(batch), used, skipped


def preprocessing_for(model: VGG | ResNet, metadata: Mapping[str, Any], size: int | None) -> dict[str, Any]:
    """The checkpoint's preprocessing (torchvision's if it has none), resized/cropped to ``size`` if given.

    Raises:
      ValueError: a ``size`` below the model's smallest input, or a model that takes one size only (no
        adaptive pool: the VGG-Face and VGGFace2 layouts) and images that would not be that size.
    """
    spec = metadata.get("preprocessing")
    spec = preset("torchvision") if spec is None else validate_preprocessing(spec)
    inputs = model.input_spec
    if size is not None:
        if size < inputs.min_size:
            raise ValueError(f"size={size} is too small: {inputs.min_reason} need at least "
                             f"{inputs.min_size}x{inputs.min_size} images")
        spec = {**spec, "resize": size, "crop": size}
    if inputs.fixed_size is not None and spec["crop"] != inputs.fixed_size:
        raise ValueError(f"{inputs.fixed_reason} takes {inputs.fixed_size}x{inputs.fixed_size} images, "
                         f"but the preprocessing crops to {spec['crop']}; pass size={inputs.fixed_size}")
    if spec["crop"] is None:
        raise ValueError("the preprocessing has no crop, so images of different sizes cannot be batched; pass size")
    return spec


# ----------------------------------------------------------------------------- composites


def zennit_composite(zennit: Any, name: str, low: Any, high: Any, canonizers: Sequence[Any] = ()) -> Any:
    """Zennit's composite ``name`` (``None`` for ``gradient``) with ``canonizers`` (a ResNet's
    ``ResNetCanonizer``); ``low``/``high`` are ``[1, C, 1, 1]`` tensors."""
    zc, zr, zt = zennit.composites, zennit.rules, zennit.types
    given = {"canonizers": list(canonizers)}
    factories: dict[str, Callable[[], Any]] = {
        "epsilon_gamma_box": lambda: zc.EpsilonGammaBox(low=low, high=high, **given),
        "epsilon_plus": lambda: zc.EpsilonPlus(**given),
        "epsilon_plus_flat": lambda: zc.EpsilonPlusFlat(**given),
        "epsilon_alpha2_beta1": lambda: zc.EpsilonAlpha2Beta1(**given),
        "epsilon_alpha2_beta1_flat": lambda: zc.EpsilonAlpha2Beta1Flat(**given),
        "excitation_backprop": lambda: zc.ExcitationBackprop(**given),
        "guided_backprop": lambda: zc.GuidedBackprop(**given),
        "deconvnet": lambda: zc.DeconvNet(**given),
        "epsilon": lambda: zc.LayerMapComposite(
            zc.layer_map_base() + [((zt.Convolution, zt.Linear), zr.Epsilon())], **given),
        "gradient": lambda: None,
    }
    return factories[name]()


def check_composites(names: Sequence[str] | None) -> tuple[str, ...]:
    """The composites to check (the defaults for None); ``ValueError`` naming an unknown one."""
    names = ZENNIT_COMPOSITES if names is None else tuple(names)
    if not names:
        raise ValueError("no composite to check")
    unknown = [name for name in names if name not in COMPOSITES]
    if unknown:
        raise ValueError(f"composite(s) {unknown} cannot be cross-checked with Zennit; choose from {list(COMPOSITES)}")
    return tuple(dict.fromkeys(names))


# ----------------------------------------------------------------------------- running both sides


def zennit_relevance(zennit: Any, net: Any, images: np.ndarray, onehot: np.ndarray, name: str,
                     bounds: tuple[Sequence[float], Sequence[float]], dtype: str, batch_size: int,
                     canonizers: Callable[[], list[Any]] = list) -> np.ndarray:
    """Zennit's relevance ``[B, H, W, C]`` (NHWC, as lrpjax) of ``net`` already cast to ``dtype``; ``canonizers()``
    gives each composite's canonizers (:func:`resnet_canonizers` for a ResNet)."""
    import torch

    torch_dtype = getattr(torch, dtype)
    low, high = (torch.tensor(b, dtype=torch_dtype).view(1, -1, 1, 1) for b in bounds)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start:start + batch_size].transpose(0, 3, 1, 2)).to(torch_dtype)
        grad = torch.from_numpy(onehot[start:start + batch_size]).to(torch_dtype)
        composite = zennit_composite(zennit, name, low, high, canonizers())
        with zennit.attribution.Gradient(net, composite) as attributor:
            _, relevance = attributor(x.requires_grad_(True), grad)
        out.append(relevance.detach().numpy().transpose(0, 2, 3, 1))
    return np.concatenate(out)


def lrpjax_relevance(model: VGG | ResNet, variables: Any, images: np.ndarray, onehot: np.ndarray,
                     composites: Sequence[lrp_composites.Composite], dtype: str,
                     batch_size: int) -> tuple[list[np.ndarray], np.ndarray]:
    """lrpjax's relevance ``[B, H, W, C]`` in ``dtype`` for each composite, and its logits ``[B, classes]``.

    One forward pass and one compilation serve all composites; float64 needs ``jax_enable_x64``.
    """
    from lrpjax.core.engine import explain_full

    out: list[list[np.ndarray]] = [[] for _ in composites]
    logits = []
    for start in range(0, len(images), batch_size):
        x = jnp.asarray(images[start:start + batch_size], dtype)
        start_relevance = jnp.asarray(onehot[start:start + batch_size], dtype)
        result = explain_full(model, variables, x, None, list(composites), output_relevance=start_relevance)
        for collected, relevance in zip(out, result.relevance):
            collected.append(np.asarray(relevance))
        logits.append(np.asarray(result.logits))
    return [np.concatenate(collected) for collected in out], np.concatenate(logits)


def compare(got: np.ndarray, want: np.ndarray) -> tuple[float, float, float]:
    """``(max|got - want|, that / max|want|, Pearson correlation)`` of two relevance arrays."""
    got, want = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
    diff = float(np.abs(got - want).max())
    scale = float(np.abs(want).max())
    relative = diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)
    if np.std(got) == 0 or np.std(want) == 0:
        pearson = 1.0 if np.array_equal(got, want) else math.nan
    else:
        pearson = float(np.corrcoef(got, want)[0, 1])
    return diff, relative, pearson


def crosscheck(
    weights: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    composites: Sequence[str] | None = None,
    dtype: str = "float64",
    *,
    fmt: str | None = None,
    arch: str | None = None,
    limit: int | None = None,
    size: int | None = None,
    batch_size: int = 4,
    rtol: float = RTOL_FLOAT64,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Compare lrpjax's relevance with Zennit's for ``weights`` on the images in ``images_dir``.

    Args:
      weights: a PyTorch ``.pth`` (state dict; converted in memory) or an lrpjax checkpoint directory.
      images_dir: a folder of images; unreadable files are skipped and listed in :attr:`Report.skipped`.
      composites: names from :data:`COMPOSITES`; default :data:`ZENNIT_COMPOSITES`.
      dtype: ``"float64"`` (both sides in float64; pass = relative difference <= ``rtol``) or ``"float32"``
        (both in float32, compared with Zennit's float64; pass = lrpjax's error <= 1.5 x Zennit's + 1e-6).
      fmt: the ``.pth`` layout (``torchvision``, ``vggface``, ``finetuned``); auto-detected when None.
      arch: the architecture (``vgg16_bn``, ...) when it cannot be inferred; see :mod:`weights_conversion`.
      limit: use at most this many images.
      size: resize and crop images to ``size`` instead of the checkpoint's preprocessing sizes.
      batch_size: images per forward pass (memory: ~0.5 GB per image for a full VGG-16 in float64).
      rtol: the float64 tolerance, relative to the largest Zennit relevance.
      log: called with progress lines (skipped files, one line per composite); None for silence.

    Returns:
      a :class:`Report` (``report.rows``: one :class:`Row` per composite).

    Raises:
      FileNotFoundError, NotADirectoryError, ValueError: bad weights, folder or arguments (the message names
        them); ImportError: torch or zennit missing.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {list(DTYPES)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit={limit!r} must be a positive number of images")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be positive")
    names = check_composites(composites)
    log = log or (lambda line: None)
    from weights_conversion.zennit_modules import import_zennit

    import_zennit()  # fail early when torch or zennit is missing
    model, variables, metadata, state_dict = load_weights(weights, fmt, arch)
    spec = preprocessing_for(model, metadata, size)
    images, used, skipped = read_images(images_dir, spec, limit)
    for path, reason in skipped:
        log(f"skipped {path}: {reason}")
    with jax.enable_x64(True):
        rows, targets, logit_rel_diff = _compare_all(model, variables, state_dict, images, names, dtype, spec,
                                                     batch_size, rtol, log)
    layout = f"pool_to {model.pool_to}" if isinstance(model, VGG) else f"layout {model.layout}"
    description = (f"{checkpoints.architecture_name(model)} (width {model.width:g}, {model.num_classes} classes, "
                   f"{layout}) from {os.fspath(weights)}; {len(used)} image(s) {images.shape[1]}x{images.shape[2]}, "
                   f"preprocessing {spec['name']!r}, {dtype}")
    return Report(rows, used, skipped, targets, logit_rel_diff, description)


def resnet_canonizers() -> list[Any]:
    """A fresh ``[ResNetCanonizer()]`` (Zennit's; each composite needs its own instance)."""
    from zennit.torchvision import ResNetCanonizer  # importable once import_zennit ran

    return [ResNetCanonizer()]


def torch_logits(net: Any, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits of a torch model (in its dtype) on NHWC images, batch by batch."""
    import torch

    dtype = next(net.parameters()).dtype
    with torch.no_grad():
        return np.concatenate([
            net(torch.from_numpy(images[i:i + batch_size].transpose(0, 3, 1, 2)).to(dtype)).numpy()
            for i in range(0, len(images), batch_size)])


def _compare_all(model: VGG | ResNet, variables: Any, state_dict: Mapping[str, Any] | None, images: np.ndarray,
                 names: Sequence[str], dtype: str, spec: Mapping[str, Any], batch_size: int, rtol: float,
                 log: Callable[[str], None]) -> tuple[list[Row], list[int], float]:
    """The rows, the targets and the logits' relative difference (called with x64 enabled)."""
    from weights_conversion.zennit_modules import import_zennit

    if isinstance(model, ResNet):
        from weights_conversion.torch_resnet import fold_batch_norm
        from weights_conversion.torch_resnet import torch_resnet_for as torch_model_for
    else:
        from weights_conversion.torch_model import fold_batch_norm, torch_model_for

    zennit = import_zennit()
    canonizers = resnet_canonizers if isinstance(model, ResNet) else list
    net32 = torch_model_for(model, variables, state_dict)
    net64 = copy.deepcopy(net32).double()
    logits = torch_logits(net64, images, batch_size)  # unfolded, so they check the conversion too
    nets = {"float64": fold_batch_norm(net64)}  # batch norm folded in the dtype of the run
    if dtype == "float32":
        nets["float32"] = fold_batch_norm(net32)
    for net in nets.values():  # Zennit's relevance is the input's gradient: the weights' would cost ~2x for nothing
        net.requires_grad_(False)
    targets = logits.argmax(axis=1)
    onehot = np.eye(model.num_classes)[targets]
    bounds = zbox_bounds(spec)
    presets = [lrp_composites.get(name, preprocessing=spec) for name in names]
    all_ours, our_logits = lrpjax_relevance(model, variables, images, onehot, presets, dtype, batch_size)
    rows = []
    for name, ours in zip(names, all_ours):
        theirs = zennit_relevance(zennit, nets[dtype], images, onehot, name, bounds, dtype, batch_size, canonizers)
        diff, relative, pearson = compare(ours, theirs)
        if dtype == "float64":
            row = Row(name, dtype, diff, relative, pearson, relative <= rtol)
        else:
            reference = zennit_relevance(zennit, nets["float64"], images, onehot, name, bounds, "float64",
                                         batch_size, canonizers)
            ours_error, theirs_error = compare(ours, reference)[1], compare(theirs, reference)[1]
            passed = ours_error <= FLOAT32_FACTOR * theirs_error + FLOAT32_SLACK
            row = Row(name, dtype, diff, relative, pearson, passed, ours_error, theirs_error)
        log(f"{name}: max|dR|/max|R| = {row.max_rel_diff:.3e} ({'pass' if row.passed else 'FAIL'})")
        rows.append(row)
    return rows, [int(t) for t in targets], compare(our_logits, logits)[1]


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``lrpjax crosscheck`` to ``parser`` (and return it)."""
    parser.add_argument("weights", help="a PyTorch VGG or ResNet .pth (state dict; the VGGFace2 port's .pkl with "
                                         "--format vggface2) or a converted lrpjax checkpoint directory")
    parser.add_argument("--images", required=True, metavar="DIR", help="a folder of images to explain")
    parser.add_argument("--composite", action="append", choices=COMPOSITES, metavar="NAME",
                        help=f"a composite to check (repeatable; default: all of {', '.join(ZENNIT_COMPOSITES)}; "
                             "also: epsilon, gradient)")
    parser.add_argument("--dtype", choices=DTYPES, default="float64",
                        help="float64: lrpjax must equal Zennit to --rtol; float32: lrpjax's error against "
                             "Zennit's float64 result must be no worse than Zennit's own float32 error")
    parser.add_argument("--format", choices=FORMATS, default=None, dest="fmt",
                        help="layout of a .pth (default: detected from its keys)")
    parser.add_argument("--arch", default=None,
                        help="architecture of a .pth (vgg11 ... vgg19_bn, resnet18 ... resnet152; default: inferred)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="use at most N images")
    parser.add_argument("--size", type=int, default=None, metavar="S",
                        help="resize and crop images to SxS (default: the weights' preprocessing, 224)")
    parser.add_argument("--batch-size", type=int, default=4, metavar="B", help="images per forward pass")
    parser.add_argument("--rtol", type=float, default=RTOL_FLOAT64, help="float64 tolerance (relative)")
    return parser


def main(args: argparse.Namespace) -> int:
    """Run ``lrpjax crosscheck``: print the table; 0 when every composite passes, 1 when one fails, 2 on errors."""
    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        report = crosscheck(args.weights, args.images, args.composite, args.dtype, fmt=args.fmt, arch=args.arch,
                            limit=args.limit, size=args.size, batch_size=args.batch_size, rtol=args.rtol, log=log)
    except (OSError, ValueError, ImportError) as error:
        print(f"lrpjax crosscheck: error: {error}", file=sys.stderr)
        return 2
    print(report.description)
    print(f"images: {len(report.images)} used, {len(report.skipped)} skipped; targets {report.targets}; "
          f"logits max rel diff {report.logit_rel_diff:.2e}")
    for path, reason in report.skipped:
        print(f"  skipped {path}: {reason}")
    print(report.table())
    failed = [row.composite for row in report.rows if not row.passed]
    print("all composites agree" if not failed else f"FAILED: {', '.join(failed)}")
    return 0 if not failed else 1
