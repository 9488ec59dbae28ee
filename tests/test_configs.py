"""Every option of every config group composes and passes validation (nothing is instantiated here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import get_class

from gan_lab import config as config_lib
from gan_lab.errors import ConfigError
from tests.conftest import compose_train

CONFIGS = Path(config_lib.__file__).resolve().parent.parent / "configs"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def test_groups_exist():
    for group in ("model", "loss", "dataset", "tricks", "hardware", "experiment"):
        assert options(group), group
    assert set(options("model")) >= {"gan", "dcgan", "cgan", "pix2pix"}


@pytest.mark.parametrize("model", options("model"))
def test_model_picks_a_dataset_and_loss_that_fit(model):
    cfg = compose_train([f"model={model}"])
    config_lib.validate(cfg)
    assert get_class(cfg.dataset._target_).kind in get_class(cfg.model._target_).data_kinds


@pytest.mark.parametrize("group", ["loss", "hardware", "tricks"])
def test_every_option_composes_with_every_model(group):
    for model in options("model"):
        for option in options(group):
            value = f"[{option}]" if group == "tricks" else option
            cfg = compose_train([f"model={model}", f"{group}={value}"])
            config_lib.validate(cfg)
            if group == "loss":
                get_class(cfg.loss._target_)
            elif group == "tricks" and option in cfg.tricks:  # tricks/ttur.yaml sets optim.*.lr: no trick object
                get_class(cfg.tricks[option]._target_)


@pytest.mark.parametrize("dataset", options("dataset"))
def test_every_dataset_composes_with_a_model_of_its_kind(dataset):
    kind = get_class(compose_train([f"dataset={dataset}"]).dataset._target_).kind
    model = {"image": "dcgan", "points": "gan", "paired": "pix2pix", "unpaired": "cyclegan"}.get(kind)
    if model is None:  # another kind (text): the first model that trains on it
        model = next((m for m in options("model")
                      if kind in get_class(compose_train([f"model={m}"]).model._target_).data_kinds), None)
        if model is None:
            pytest.skip(f"no model config trains on {kind} data")
    cfg = compose_train([f"model={model}", f"dataset={dataset}"])
    if "image_size" in cfg.dataset and model == "dcgan":
        cfg.dataset.image_size = 32  # DCGAN draws 32 or 64 px; image_folder defaults to 64
    config_lib.validate(cfg)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose(experiment):
    cfg = compose_train([f"experiment={experiment}"])
    config_lib.validate(cfg)


def test_experiment_overrides_the_models_defaults():
    cfg = compose_train(["experiment=pix2pix_facades"])
    assert cfg.dataset._target_.endswith("PairedFolder") and cfg.dataset.direction == "BtoA"
    assert cfg.train.batch_size == 1 and cfg.model.lambda_l1 == 100


def test_command_line_overrides_the_models_defaults():
    cfg = compose_train(["model=pix2pix", "train.batch_size=16", "dataset.image_size=64"])
    assert cfg.train.batch_size == 16 and cfg.model.generator.image_size == 64


@pytest.mark.parametrize("override, key", [
    (["model=dcgan", "dataset=toy2d"], r"model\.generator\.image_size: .*dataset\.image_size"),
    (["train.n_critic=0"], "train.n_critic"),
    (["train.clip_grad.G=-1"], "train.clip_grad.G"),
    (["hardware.device=tpu"], "hardware.device"),
    (["optim.G.lr=0"], "optim.G.lr"),
])
def test_validation_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        config_lib.validate(compose_train(override))
