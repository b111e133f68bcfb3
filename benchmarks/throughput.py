"""Throughput and peak memory of lrpjax's LRP against the forward pass, jax gradient x input, and Zennit.

    python benchmarks/throughput.py                       # VGG-16, 224x224, batches 1, 16, 64, float32
    python benchmarks/throughput.py --compare-ynn         # the same with and without XLA's YNNPACK fusion
    python benchmarks/throughput.py --batch 16 --composite epsilon_gamma_box --repeats 5
    python benchmarks/throughput.py --model resnet50 --batch 1 8 16 --composite epsilon_gamma_box epsilon_plus \
        --rounds 2 --no-forward   # paired, interleaved rounds: ratios within a round, then their median

``--model resnet50``: a torchvision-layout ResNet-50; Zennit runs it with its ``ResNetCanonizer`` on the
plain-torch twin of :mod:`weights_conversion.torch_resnet` with the jax side's weights.

Every method runs on the same random VGG-16 weights and the same images, one after the other in one
run of this script, each (batch, method) in a fresh child process so that its peak resident memory is its
own. The table reports the best of the repeats in images/s, the ratios LRP / gradient (cost) and
Zennit / lrpjax (speed-up), the peak resident memory while the method ran and how much of it the method
added on top of the set-up (weights, images, imports). Compilation (jax) is excluded from the time, not from the
memory; torch needs none, and each Zennit timing is a single run (minutes at batch 64).
``--compare-ynn`` measures jaxlib's CPU fusion settings side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="
DEFAULT_COMPOSITES = ("epsilon", "epsilon_gamma_box", "epsilon_plus", "epsilon_plus_flat", "epsilon_alpha2_beta1",
                      "epsilon_alpha2_beta1_flat", "tutorial")
ZENNIT_COMPOSITES = ("epsilon_gamma_box", "epsilon_plus", "epsilon_plus_flat", "epsilon_alpha2_beta1",
                     "epsilon_alpha2_beta1_flat")


def best_time(fn: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    if warm_up:
        fn()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


MODELS = ("vgg16", "resnet50")


def jax_methods(batch: int, size: int, composite_names: list[str],
                model_name: str = "vgg16") -> tuple[dict[str, Callable], object, object]:
    import jax
    import jax.numpy as jnp

    import lrpjax
    from lrpjax.io.preprocess import TORCHVISION

    model = lrpjax.resnet50(num_classes=1000) if model_name == "resnet50" else lrpjax.vgg16(num_classes=1000)
    if model_name == "resnet50":  # drawn directly: tracing model.init of a ResNet-50 takes tens of seconds
        abstract = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, 3)))
        draws = iter(jax.random.split(jax.random.key(3), 1000))
        variables = jax.tree.map(lambda a: 0.02 * jax.random.normal(next(draws), a.shape, a.dtype), abstract)
        variables["batch_stats"] = jax.tree.map(lambda a: jnp.abs(a) + 1.0, variables["batch_stats"])
    else:
        variables = model.init(jax.random.key(0), jnp.zeros((1, size, size, 3)))
    keys = iter(jax.random.split(jax.random.key(1), 64))
    variables = jax.tree_util.tree_map_with_path(
        lambda path, a: 0.05 * jax.random.normal(next(keys), a.shape) if "bias" in jax.tree_util.keystr(path) else a,
        variables)
    images = jax.random.normal(jax.random.key(2), (batch, size, size, 3), jnp.float32)
    targets = jnp.arange(batch) % 1000
    forward = jax.jit(model.apply)

    @jax.jit
    def gradient_x_input(variables, images, targets):
        def logit(image, target):
            return model.apply(variables, image[None])[0, target]
        return jax.vmap(jax.grad(logit))(images, targets) * images

    methods = {
        "forward": lambda: forward(variables, images).block_until_ready(),
        "gradient x input": lambda: gradient_x_input(variables, images, targets).block_until_ready(),
    }
    for name in composite_names:
        composite = lrpjax.core.composites.get(name, preprocessing=TORCHVISION)
        methods[f"lrpjax {name}"] = (
            lambda c=composite: lrpjax.explain(model, variables, images, targets, c).block_until_ready())
    return methods, variables, images


def zennit_methods(variables, images, composite_names: list[str], model_name: str = "vgg16") -> dict[str, Callable]:
    import torch

    import lrpjax
    from weights_conversion.torch_model import torch_model_for
    from weights_conversion.zennit_modules import import_zennit

    zennit = import_zennit()
    torch.set_num_threads(os.cpu_count() or 1)
    canonizers = []
    if model_name == "resnet50":
        from zennit.torchvision import ResNetCanonizer

        from weights_conversion.torch_resnet import torch_resnet_for

        net = torch_resnet_for(lrpjax.resnet50(num_classes=1000), variables, None).eval()
        canonizers = [ResNetCanonizer()]
    else:
        net = torch_model_for(lrpjax.vgg16(num_classes=1000), variables, None).eval()
    x = torch.from_numpy(np.asarray(images).transpose(0, 3, 1, 2).copy())
    one_hot = torch.eye(1000)[torch.arange(x.shape[0]) % 1000]
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]
    low, high = (torch.zeros_like(x) - mean) / std, (torch.ones_like(x) - mean) / std
    composites = {
        "epsilon_gamma_box": lambda: zennit.composites.EpsilonGammaBox(low=low, high=high, canonizers=canonizers),
        "epsilon_plus": lambda: zennit.composites.EpsilonPlus(canonizers=canonizers),
        "epsilon_plus_flat": lambda: zennit.composites.EpsilonPlusFlat(canonizers=canonizers),
        "epsilon_alpha2_beta1": lambda: zennit.composites.EpsilonAlpha2Beta1(canonizers=canonizers),
        "epsilon_alpha2_beta1_flat": lambda: zennit.composites.EpsilonAlpha2Beta1Flat(canonizers=canonizers),
    }

    def run(make):
        with zennit.attribution.Gradient(net, make()) as attributor:
            attributor(x.clone().requires_grad_(), one_hot)

    def torch_gradient():
        inputs = x.clone().requires_grad_()
        torch.autograd.grad((net(inputs) * one_hot).sum(), inputs)  # input gradient only, as Zennit

    methods = {"torch gradient x input": torch_gradient}
    methods.update({f"zennit {n}": (lambda m=composites[n]: run(m)) for n in composite_names if n in composites})
    return methods


def resident_mib(field: str = "VmRSS") -> float:
    """Linux's current (VmRSS) or peak (VmHWM) resident set of this process."""
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":")) / 1024


def reset_peak_resident() -> None:
    """Restart VmHWM from the current resident set, so set-up transients do not count (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def measure_one(batch: int, method: str, size: int, repeats: int, composite_names: list[str],
                model_name: str = "vgg16") -> dict:
    """Time one method in this process, with the peak resident memory while it ran."""
    methods, variables, images = jax_methods(batch, size, [n for n in composite_names if method == f"lrpjax {n}"],
                                             model_name)
    on_torch = method.startswith(("zennit", "torch"))  # nothing to compile; Zennit is slow: one timed run
    if on_torch:
        methods = zennit_methods(variables, images, [method.removeprefix("zennit ")], model_name)
    set_up = resident_mib()
    reset_peak_resident()
    seconds = best_time(methods[method], 1 if on_torch else repeats, warm_up=not on_torch)
    peak = resident_mib("VmHWM")
    return {"batch": batch, "method": method, "seconds": seconds, "images_per_s": batch / seconds,
            "peak_rss_mib": peak, "added_mib": peak - set_up}


def method_names(composite_names: list[str], zennit: bool, forward: bool = True) -> list[str]:
    names = ["forward"] * forward + ["gradient x input", *(f"lrpjax {n}" for n in composite_names)]
    if zennit:
        names += ["torch gradient x input", *(f"zennit {n}" for n in composite_names if n in ZENNIT_COMPOSITES)]
    return names


def measure(batches: list[int], size: int, repeats: int, composite_names: list[str], zennit: bool,
            model_name: str = "vgg16", rounds: int = 1, forward: bool = True) -> list[dict]:
    """Every (batch, method) in its own child process; with ``rounds > 1`` the whole list again and again
    (interleaved), so that each round's ratios compare methods timed minutes apart under the same load."""
    rows = []
    for batch, name, round_ in ((b, n, r) for r in range(rounds) for b in batches
                                for n in method_names(composite_names, zennit, forward)):
        command = [sys.executable, __file__, "--child", str(batch), name, "--size", str(size),
                   "--repeats", str(repeats), "--model", model_name, "--composite", *composite_names]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            killed = result.returncode == -signal.SIGKILL  # the kernel's out-of-memory killer, as a rule
            rows.append({"batch": batch, "method": name, "round": round_,
                         "failed": "killed (out of memory)" if killed else f"exit {result.returncode}"})
            print(f"  batch {batch:3d}  {name:36s} {rows[-1]['failed']}\n{result.stderr[-2000:]}",
                  file=sys.stderr, flush=True)
            continue
        row = {**json.loads(result.stdout.strip().splitlines()[-1]), "round": round_,
               "load": os.getloadavg()[0]}
        rows.append(row)
        print(f"  round {round_} batch {batch:3d}  {name:36s} {row['images_per_s']:8.2f} images/s  "
              f"peak {row['peak_rss_mib'] / 1024:5.1f} GiB (+{row['added_mib'] / 1024:.1f})",
              file=sys.stderr, flush=True)
    return rows


def _paired(rows: list[dict], batch: int, name: str, reference: str, invert: bool = False) -> str:
    """Median over rounds of ``name``'s time / ``reference``'s time in the same round (inverted: the other way),
    with the range over rounds when there are several."""
    ratios = []
    for round_ in sorted({r.get("round", 0) for r in rows}):
        times = {r["method"]: r["seconds"] for r in rows
                 if r["batch"] == batch and r.get("round", 0) == round_ and "seconds" in r}
        if name in times and reference in times:
            ratios.append(times[reference] / times[name] if invert else times[name] / times[reference])
    if not ratios:
        return ""
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}"
    return f"{np.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})"


def table(rows: list[dict]) -> str:
    """Best images/s and peak memory over rounds; ratios paired within each round (median, range)."""
    lines = ["| batch | method | images/s | × gradient cost | Zennit / lrpjax | peak RSS GiB | added GiB |",
             "|---|---|---|---|---|---|---|"]
    for batch in sorted({r["batch"] for r in rows}):
        names = list(dict.fromkeys(r["method"] for r in rows if r["batch"] == batch))
        for name in names:
            done = [r for r in rows if r["batch"] == batch and r["method"] == name and "seconds" in r]
            if not done:
                failed = next(r["failed"] for r in rows if r["batch"] == batch and r["method"] == name)
                lines.append(f"| {batch} | {name} | {failed} | | | | |")
                continue
            best = min(done, key=lambda r: r["seconds"])
            cost = "" if name.startswith(("zennit", "torch")) else _paired(rows, batch, name, "gradient x input")
            speedup = _paired(rows, batch, name, f"zennit {name[7:]}", invert=True) if name.startswith(
                "lrpjax ") else ""
            lines.append(f"| {batch} | {name} | {best['images_per_s']:.2f} | {cost} | {speedup} | "
                         f"{max(r['peak_rss_mib'] for r in done) / 1024:.1f} | "
                         f"{max(r['added_mib'] for r in done) / 1024:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--model", choices=MODELS, default="vgg16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds over every (batch, method)")
    parser.add_argument("--no-forward", action="store_true", help="skip the plain forward pass")
    parser.add_argument("--composite", nargs="+", default=list(DEFAULT_COMPOSITES))
    parser.add_argument("--no-zennit", action="store_true", help="skip the torch/Zennit side")
    parser.add_argument("--compare-ynn", action="store_true",
                        help=f"run twice, with jaxlib's default CPU fusion and with XLA_FLAGS={YNN_OFF}")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--child", nargs=2, metavar=("BATCH", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_one(int(args.child[0]), args.child[1], args.size, args.repeats, args.composite,
                                     args.model)))
        return 0
    if args.compare_ynn:
        child = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--compare-ynn"]
        for label, flags in (("jaxlib default (YNNPACK fusion on)", ""), ("YNNPACK fusion off", YNN_OFF)):
            env = {**os.environ, "XLA_FLAGS": flags}
            print(f"\n## {label}: XLA_FLAGS={flags!r}\n", flush=True)
            subprocess.run([sys.executable, __file__, *child], env=env, check=True)
        return 0
    start_load = os.getloadavg()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, load average {start_load[0]:.1f}", file=sys.stderr)
    rows = measure(args.batch, args.size, args.repeats, args.composite, not args.no_zennit, args.model,
                   args.rounds, not args.no_forward)
    print(table(rows), flush=True)
    print(f"\nload average (1 min) {start_load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
          f"{os.cpu_count()} cores", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
