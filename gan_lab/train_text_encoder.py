"""``gan-lab train-text-encoder``: train (or find in the cache) the text encoder of ``dataset=shapes_text``.

``gan-lab train-text-encoder dataset=shapes_text`` trains the joint image-text embedding of
``gan_lab.data.text_encoder`` with the dataset's ``text_encoder`` settings, prints its held-out
caption->image retrieval accuracy (top-1 and top-5 among 100 candidate images) and caches it where
``dataset.encoder=trained`` looks for it.
"""

from __future__ import annotations

import time

import hydra
from omegaconf import DictConfig, OmegaConf

from gan_lab import config as config_lib
from gan_lab.config import instantiate_group
from gan_lab.data import text_encoder
from gan_lab.engine.precision import resolve_device
from gan_lab.errors import ConfigError, exit_on_error
from gan_lab.ui import format_duration, print_table, summary_table



def run(cfg: DictConfig) -> text_encoder.CachedEncoder:
    """Load or train the encoder of ``cfg.dataset`` and print its retrieval accuracy."""
    t0 = time.perf_counter()
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    if "text_encoder" not in dataset:
        raise ConfigError(f"dataset: {dataset.get('_target_')} has no trained text encoder (dataset=shapes_text has)")
    device = resolve_device(OmegaConf.create({"device": cfg.device}))
    # The spec comes from the dataset itself (its checks and defaults); the oracle builds it without training.
    shapes = instantiate_group(OmegaConf.create({**dataset, "encoder": "oracle", "count": 1}), "dataset")
    spec, cache_dir = shapes.encoder_spec()
    encoder = text_encoder.load_or_train(spec, cache_dir, device, force=cfg.force)
    status = f"trained in {format_duration(time.perf_counter() - t0)}" if encoder.trained else "from the cache"
    rows = {"retrieval top-1": f"{encoder.retrieval['top1']:.4f}",
            "retrieval top-5": f"{encoder.retrieval['top5']:.4f}",
            "measured on": f"{text_encoder.HELDOUT_IMAGES} held-out captions (held-out images and phrasings), "
                           f"each against {text_encoder.POOL} images",
            "status": status, "cache": str(encoder.path)}
    print_table(summary_table(rows, title="gan-lab train-text-encoder"))
    return encoder


config_lib.register()  # the resolvers of the shared job_logging config (the log file)


@hydra.main(config_path="pkg://gan_lab.configs", config_name="train_text_encoder", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exit_on_error(run, cfg)


if __name__ == "__main__":
    main()
