"""Training: the step lowers the loss, frozen layers stay put, resume equals an uninterrupted run, NaN stops
with the step, finetuning a checkpoint exports the metadata. Tiny VGGs (1/16 width, 32x32), float32."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrpjax import data
from lrpjax.io import checkpoints
from lrpjax.jobs import train

SPEC = {"name": "t32", "pixel_range": [0, 1], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "resize": 36, "crop": 32}
MODEL = {"width": 0.0625, "batch_norm": True, "pool_to": None, "input_size": 32}
CONFIG = train.TrainConfig(model=MODEL, preprocessing=SPEC, optimizer="adamw", learning_rate=1e-3, steps=9,
                           batch_size=8, warmup_steps=2, eval_every=4, checkpoint_every=4, log_every=3, workers=2,
                           colour_jitter=0.2)


def _split(name="toy:train", count=24, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    images = rng.integers(0, 80, (count, 40, 40, 3)).astype(np.uint8)
    images[..., 0] += (labels * 80)[:, None, None].astype(np.uint8)  # the class is in the red channel
    return data.array_split(name, images, labels, [f"c{i}" for i in range(classes)])


def _leaves_equal(a, b):
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b)))


def _state(config, model, variables):
    optimizer, step = train.compiled_step(model, config, variables["params"])
    state = train.TrainState(variables["params"], variables.get("batch_stats", {}),
                             optimizer.init(variables["params"]), jnp.zeros((), jnp.int32))
    return state, step


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    config = train.TrainConfig(**{**CONFIG.__dict__, "model": {**MODEL, "dropout_rate": 0.0}, "schedule": "constant",
                                  "warmup_steps": 0, "learning_rate": 3e-3})
    model, variables, _ = train.initial_variables(config, 3)
    state, step = _state(config, model, variables)
    batch = next(data.train_batches(_split(), SPEC, batch_size=8, seed=0, augment=False))
    losses = []
    for i in range(6):
        state, metrics = step(state, batch.image, batch.label, jax.random.key(i))
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.8 * losses[0] and np.all(np.diff(losses[1:]) < 0), losses
    assert jax.tree.leaves(state.params)[0].dtype == jnp.float32 and int(state.step) == 6


def test_head_only_training_leaves_every_other_layer_and_its_statistics_unchanged():
    config = train.TrainConfig(**{**CONFIG.__dict__, "trainable": "head", "optimizer": "sgd",
                                  "learning_rate": 0.1, "warmup_steps": 0})
    model, variables, _ = train.initial_variables(config, 3)
    state, step = _state(config, model, variables)
    batch = next(data.train_batches(_split(), SPEC, batch_size=8, seed=0))
    after, _ = step(state, batch.image, batch.label, jax.random.key(0))
    assert train.trainable_layers(variables["params"], "head") == {"fc8"}
    assert train.trainable_layers(variables["params"], "conv5") == {"conv5_1", "conv5_2", "conv5_3", "bn5_1",
                                                                    "bn5_2", "bn5_3", "fc6", "fc7", "fc8"}
    for name in variables["params"]:
        same = _leaves_equal(after.params[name], state.params[name])
        assert same == (name != "fc8"), name
    assert _leaves_equal(after.batch_stats, state.batch_stats)


def test_random_variables_match_model_init_in_structure_and_scale():
    model = checkpoints.model_from_config({"depth": 16, **MODEL, "num_classes": 3})
    variables = train.random_variables(model, 0)
    checkpoints.check_variables(model, variables)
    kernel = np.asarray(variables["params"]["conv3_1"]["kernel"])
    assert abs(kernel.std() / np.sqrt(2 / (9 * kernel.shape[-1])) - 1) < 0.1 and np.abs(kernel).max() <= 2.0 * (
        np.sqrt(2 / (9 * kernel.shape[-1])) / 0.87962566103423978) + 1e-7
    assert _leaves_equal(variables, train.random_variables(model, 0))
    assert not _leaves_equal(variables["params"]["fc8"], train.random_variables(model, 1)["params"]["fc8"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("whole")
    split, validation = _split(), _split("toy:validation", count=9, seed=1)
    return workdir, train.fit(CONFIG, split, workdir=str(workdir), validation=validation, log=lambda line: None)


def _metrics(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError], ids=["ctrl-c", "crash"])
def test_a_resumed_run_ends_equal_to_an_uninterrupted_one(tmp_path, uninterrupted, interrupt):
    whole_dir, whole = uninterrupted
    split, validation = _split(), _split("toy:validation", count=9, seed=1)

    def stop_at_step_6(step, state):
        if step == 6:
            raise interrupt("stopped by the test")

    with pytest.raises(interrupt):
        train.fit(CONFIG, split, workdir=str(tmp_path), validation=validation, hooks=[stop_at_step_6],
                  log=lambda line: None)
    resumed_from = 6 if interrupt is KeyboardInterrupt else 4  # Ctrl-C saves; a crash resumes from the last save
    logs = []
    again = train.fit(CONFIG, split, workdir=str(tmp_path), validation=validation, log=logs.append)
    assert logs[0].startswith(f"resumed from step {resumed_from}")
    assert _leaves_equal(again.variables, whole.variables) and again.step == whole.step
    assert again.validation == whole.validation
    cut, full = _metrics(tmp_path), _metrics(whole_dir)
    assert [m["step"] for m in cut] == [m["step"] for m in full]  # lines past the last save were dropped
    assert [m for m in cut if m["split"] != "train"] == [m for m in full if m["split"] != "train"]


def test_nan_loss_stops_with_the_step(tmp_path):
    exploding = {**SPEC, "std": [1e-37, 1e-37, 1e-37]}  # inputs of ~1e37: the logits overflow at once
    config = train.TrainConfig(**{**CONFIG.__dict__, "preprocessing": exploding})
    with pytest.raises(FloatingPointError, match="at step 1;"):
        train.fit(config, _split(), workdir=str(tmp_path), log=lambda line: None)


def test_config_and_workdir_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="trainable='conv4'"):
        train.TrainConfig(preprocessing=SPEC, trainable="conv4")
    with pytest.raises(ValueError, match="steps=0"):
        train.TrainConfig(preprocessing=SPEC, steps=0)
    with pytest.raises(ValueError, match="preprocessing is required"):
        train.TrainConfig()
    train._check_workdir_config(str(tmp_path), CONFIG)
    with pytest.raises(ValueError, match=r"differs in \['learning_rate'\]"):
        train._check_workdir_config(str(tmp_path), train.TrainConfig(**{**CONFIG.__dict__, "learning_rate": 0.5}))


def test_finetuning_a_checkpoint_exports_model_and_metadata(tmp_path):
    base_model = checkpoints.model_from_config({"depth": 16, **MODEL, "num_classes": 5})
    base = checkpoints.save(tmp_path / "base", base_model, train.random_variables(base_model, 3),
                            {"preprocessing": SPEC, "class_names": list("abcde")})
    config = train.TrainConfig(base=base, task="toy", trainable="fc", optimizer="sgd", steps=3, batch_size=8,
                               eval_every=3, checkpoint_every=3, log_every=3, workers=2, seed=4)
    split, test = _split(), _split("toy:test", count=7, seed=2)
    results = train.run(config, str(tmp_path / "run"), train=split, tests=[test], keep_checkpoints=False,
                        log=lambda line: None)
    assert results["test"]["toy:test"]["count"] == 7 and 0 <= results["test"]["toy:test"]["accuracy"] <= 1
    model, variables, metadata = checkpoints.load(tmp_path / "run" / "model")
    assert model.num_classes == 3 and metadata["class_names"] == ["c0", "c1", "c2"]
    assert metadata["preprocessing"]["crop"] == 32 and metadata["task"] == "toy" and metadata["seed"] == 4
    assert metadata["base_checkpoint"] == base and metadata["train_config"]["trainable"] == "fc"
    base_variables = checkpoints.load(base)[1]
    assert _leaves_equal(variables["params"]["conv1_1"], base_variables["params"]["conv1_1"])  # frozen
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_train_command_trains_tests_and_exports(tmp_path, capsys):
    from lrpjax.jobs.cli import main

    workdir = tmp_path / "run"
    argv = ["train", str(workdir), "--train", "lfw_subset:train", "--test", "lfw_subset:test", "--data-dir",
            str(tmp_path / "tfds"), "--width", "0.0625", "--input-size", "32", "--preprocessing", json.dumps(SPEC),
            "--optimizer", "adamw", "--learning-rate", "1e-3", "--steps", "2", "--batch-size", "8",
            "--checkpoint-every", "1", "--workers", "2"]
    assert main(argv) == 0
    assert "lfw_subset:test" in capsys.readouterr().out
    metadata = json.loads((workdir / "model" / "metadata.json").read_text())
    assert metadata["class_names"] == ["face", "non-face"] and metadata["test"]["lfw_subset:test"]["count"] == 40
    assert main(argv[:-1] + ["1"]) == 0  # the finished run again, with other workers: nothing to train
    changed = [a if a != "1e-3" else "2e-3" for a in argv]
    assert main(changed) == 2 and "differs in ['learning_rate']" in capsys.readouterr().err
    unknown = [a if a != "lfw_subset:train" else "nowhere:train" for a in argv]
    assert main(unknown) == 2 and "'nowhere' is unknown" in capsys.readouterr().err


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_warm_up_starts_above_zero_so_the_first_step_learns(schedule):
    config = train.TrainConfig(**{**CONFIG.__dict__, "learning_rate": 0.3, "warmup_steps": 2, "steps": 10,
                                  "schedule": schedule})
    rates = [float(train.learning_rate_schedule(config)(s)) for s in range(4)]
    after = 0.3 if schedule == "constant" else 0.15 * (1 + np.cos(np.pi / 8))  # cosine over the 8 steps after
    np.testing.assert_allclose(rates, [0.1, 0.2, 0.3, after], rtol=1e-6)
    no_warmup = train.TrainConfig(**{**config.__dict__, "warmup_steps": 0})
    assert float(train.learning_rate_schedule(no_warmup)(0)) == pytest.approx(0.3)


def test_new_head_is_a_seeded_host_draw_that_compiles_no_random_program(caplog):
    params = {"fc8": {"kernel": np.ones((64, 1000), np.float32), "bias": np.ones(1000, np.float32)}, "fc7": {}}
    with jax.log_compiles(True), caplog.at_level("WARNING", logger="jax"):
        head = train.new_head(params, 3, 5)
    compiled = " ".join(record.getMessage() for record in caplog.records)
    assert not any(word in compiled for word in ("threefry", "random", "normal")), compiled
    kernel = np.asarray(head["fc8"]["kernel"])
    assert kernel.shape == (64, 3) and kernel.dtype == np.float32 and abs(kernel.std() / 0.01 - 1) < 0.25
    np.testing.assert_array_equal(kernel, np.asarray(train.new_head(params, 3, 5)["fc8"]["kernel"]))
    assert not np.array_equal(kernel, np.asarray(train.new_head(params, 3, 6)["fc8"]["kernel"]))
    assert np.array_equal(head["fc8"]["bias"], np.zeros(3)) and head["fc7"] is params["fc7"]
