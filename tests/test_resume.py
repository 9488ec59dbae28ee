"""Exact resume: 2N steps in one go equal N steps, a stop, and N more (same seed, CPU)."""

from __future__ import annotations

import pytest
import torch

from hydra.utils import instantiate

from gan_lab.engine import checkpoint
from gan_lab.engine.restore import restore
from gan_lab.errors import CheckpointError, ConfigError
from gan_lab.train import run
from tests.conftest import TINY, compose_train, flat_model

STEPS = ["train.log_every=1", "train.sample_every=3", "train.ckpt_every=3"]


def _losses(run_dir) -> dict:
    """Every scalar a run logged, by tag (timings left out): losses, D outputs, penalties, model extras."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)]
            for tag in acc.Tags()["scalars"] if not tag.startswith("perf/")}


def stop_and_resume(tmp_path, base: list[str], stop: int = 3, steps: int = 6, auto: bool = False) -> tuple[dict, dict]:
    """Trains ``steps`` in one go and ``stop`` + resume to ``steps``; asserts that both logged the same
    scalars at every step, wrote the same sample grids and ended with the same weights. Returns
    (uninterrupted, resumed) checkpoints. ``auto``: both sessions run the whole command with resume=auto
    (a requeued job), else the second names the run and changes only train.steps."""
    full, part = tmp_path / "full", tmp_path / "part"
    base = [*base, f"schedule.total_steps={steps}"]  # the stop is a shorter run: pin a decaying schedule's horizon
    run(compose_train([*base, *STEPS, f"train.steps={steps}"]), full)
    first = [*base, *STEPS, *(["resume=auto"] if auto else []), f"train.steps={stop}"]
    run(compose_train(first), part, overrides=first)  # stops ...
    resume = [f"resume={'auto' if auto else part}", f"train.steps={steps}"]
    resume = [*base, *STEPS, *resume] if auto else resume
    run(compose_train([*base, *STEPS, *resume]), part, overrides=resume)  # ... and continues

    logged = _losses(full)
    a, b = checkpoint.load(full / "checkpoints" / "last.pt"), checkpoint.load(part / "checkpoints" / "last.pt")
    # every player's loss (a phase that starts later, SRGAN's D after pretraining, is logged from then on)
    assert {f"loss/{player}" for player in a["optimizers"]} <= set(logged) and len(logged["loss/G"]) == steps
    assert _losses(part) == logged
    for png in sorted((full / "samples").glob("*.png")):  # grids of the fixed inputs, before and after the stop
        assert png.read_bytes() == (part / "samples" / png.name).read_bytes(), png.name
    assert a["step"] == b["step"] == steps
    for key, value in flat_model(a).items():
        assert same(value, flat_model(b)[key]), key
    return a, b


def as_format_2(state: dict) -> dict:
    """A checkpoint as format 2 wrote it: ProGAN's phase as ``level``/``alpha`` buffers, the grid's dataset
    examples stored in ``fixed``, no ``grid``, no latent stream."""
    models = {}
    for player, weights in state["models"].items():
        models[player] = {}
        for key, value in weights.items():
            if key.endswith("_extra_state"):
                prefix = key[: -len("_extra_state")]
                models[player].update({f"{prefix}level": torch.tensor(value["level"]),
                                       f"{prefix}alpha": torch.tensor(value["alpha"])})
            else:
                models[player][key] = value
    examples = instantiate(state["config"]["dataset"]).examples(state["grid"])
    shown = {k: v for k, v in examples.items() if k in ("input", "target", "A", "B")}
    old = {k: v for k, v in state.items() if k != "grid"}
    rng = {k: v for k, v in state["rng"].items() if k != "latent"}
    return {**old, "format_version": 2, "models": models, "fixed": {**shown, **state["fixed"]}, "rng": rng}


@pytest.mark.parametrize("model", ["pix2pix", "progan"])
def test_a_format_2_checkpoint_is_evaluated_and_sampled_but_not_resumed(tmp_path, model):
    """Runs of the previous checkpoint format (ProGAN's phase in buffers, grid images stored, latents from the
    global RNG) restore to the same networks and grid; resuming them is a clear error (their latents came
    from a stream this gan-lab no longer has)."""
    extra = ["model.stabilize_steps=1", "model.fade_steps=4", "model.generator.width=8",
             "model.discriminator.width=8"] if model == "progan" else []  # stopped mid-fade
    base = [*TINY, f"model={model}", "dataset.count=64", *extra, "train.steps=3"]
    run(compose_train(base), tmp_path / "new")
    state = checkpoint.load(tmp_path / "new" / "checkpoints" / "last.pt")
    (tmp_path / "old" / "checkpoints").mkdir(parents=True)
    checkpoint.save(as_format_2(state), tmp_path / "old" / "checkpoints" / "last.pt")
    new, old = (restore(tmp_path / name, torch.device("cpu")) for name in ("new", "old"))
    assert all(same(v, old.task.state_dict()[k]) for k, v in new.task.state_dict().items())
    x = instantiate(new.config.dataset).examples(4)
    given = {"input": x["input"]} if model == "pix2pix" else {"z": torch.randn(4, new.task.z_dim)}
    outputs = []
    for restored in (new, old):
        torch.manual_seed(0)  # pix2pix keeps dropout on when sampling
        outputs.append(restored.task.sample(4, restored.generator, **given)["samples"])
    assert torch.equal(*outputs)
    resume = [f"resume={tmp_path / 'old'}", "train.steps=6"]
    with pytest.raises(CheckpointError, match="no latent stream"):
        run(compose_train([*base, *resume]), tmp_path / "old", overrides=resume)


def same(a, b) -> bool:
    """Equal tensors, or equal plain values and containers of them (a module's extra state)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


@pytest.mark.parametrize("model", ["dcgan", "pix2pix", "wgan_gp", "cyclegan", "cgan", "infogan", "srresnet",
                                   "gan_int_cls", "stackgan", "lapgan", "ebgan", "musegan", "began", "bigan", "ali"])
def test_stop_and_resume_equals_uninterrupted(tmp_path, model):
    a, _ = stop_and_resume(tmp_path, [*TINY, f"model={model}", "dataset.count=64"])
    # a grid's dataset examples (pix2pix input/target, CycleGAN A/B) are re-read on resume, never stored
    assert a["grid"] == 8 and not {"input", "target", "A", "B"} & set(a["fixed"])


def test_srgan_resumes_exactly_across_its_pretraining_boundary(tmp_path):
    """Steps 1-2 train G alone (content loss), 3-6 G and D; the run stops after step 3, the first with D."""
    a, _ = stop_and_resume(tmp_path, [*TINY, "model=srgan", "dataset.count=64", "model.pretrain_steps=2",
                                      "model.generator.blocks=2"], stop=3)
    assert [step for step, _ in _losses(tmp_path / "full")["loss/D"]] == [3, 4, 5, 6]
    assert set(a["models"]) == {"G", "D"}


def test_stackgan_stage2_resumes_exactly(tmp_path):
    """Stage II on a frozen Stage I: the stop, the reload of Stage I and the resume change nothing."""
    small = ["model=stackgan", "dataset.count=64", "dataset.image_size=32", "model.generator.width=8",
             "model.discriminator.width=8", "model.stage2_generator.width=8", "model.stage2_discriminator.width=8"]
    run(compose_train([*TINY, *small, "train.steps=2"]), tmp_path / "stage1")
    stop_and_resume(tmp_path, [*TINY, *small, "model.stage=2", f"model.stage1={tmp_path / 'stage1'}"])


def test_a_checkpoint_without_the_latent_stream_is_not_resumed(tmp_path):
    """Checkpoints written before latents had a stream of their own: a clear error, not a silent divergence."""
    run(compose_train([*TINY, "train.steps=2", "dataset.count=32"]), tmp_path)
    last = tmp_path / "checkpoints" / "last.pt"
    state = checkpoint.load(last)
    del state["rng"]["latent"]
    checkpoint.save(state, last)
    resume = [f"resume={tmp_path}", "train.steps=4"]
    with pytest.raises(CheckpointError, match="no latent stream"):
        run(compose_train([*TINY, "dataset.count=32", *resume]), tmp_path, overrides=resume)


def test_resume_refuses_to_change_the_model(tmp_path):
    run(compose_train([*TINY, "train.steps=2", "dataset.count=32"]), tmp_path)
    cfg = compose_train([*TINY, f"resume={tmp_path}", "loss=minimax"])
    with pytest.raises(ConfigError, match="loss=minimax"):
        run(cfg, tmp_path, overrides=[f"resume={tmp_path}", "loss=minimax"])


def test_resume_from_missing_or_corrupt_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run(compose_train([*TINY, f"resume={tmp_path}"]), tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="corrupt"):
        run(compose_train([*TINY, f"resume={tmp_path / 'bad.pt'}"]), tmp_path)


def test_new_run_refuses_an_existing_run_dir(tmp_path):
    run(compose_train([*TINY, "train.steps=2", "dataset.count=32"]), tmp_path)
    with pytest.raises(ConfigError, match="already holds a run"):
        run(compose_train([*TINY, "train.steps=2", "dataset.count=32"]), tmp_path)


def test_extending_a_run_keeps_the_learning_rate_continuous(tmp_path):
    """A LinearDecay run that reached lr 0 and is extended stays at 0: the horizon is stored, not re-read
    from train.steps (before, the rate jumped back up to a fraction of the base rate)."""
    decay = ["schedule._target_=gan_lab.engine.schedules.LinearDecay", "+schedule.start=0.5", "train.log_every=1"]
    run(compose_train([*TINY, *decay, "dataset.count=64", "train.steps=4"]), tmp_path)
    more = [f"resume={tmp_path}", "train.steps=6"]
    run(compose_train([*TINY, *decay, "dataset.count=64", *more]), tmp_path, overrides=more)
    lrs = [value / 2e-4 for _, value in _losses(tmp_path)["lr/G"]]
    assert lrs == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0, 0.0], abs=1e-6)


@pytest.mark.parametrize("model", ["dcgan", "progan"])
def test_resume_auto_continues_the_run_directory_exactly(tmp_path, model):
    """resume=auto starts a new run in an empty directory and continues the one it finds there, with the
    whole command repeated (as a requeued Slurm job does)."""
    extra = ["model.stabilize_steps=1", "model.fade_steps=4", "model.generator.width=8",
             "model.discriminator.width=8", "tricks=[instance_noise]", "tricks.instance_noise.anneal_steps=6"
             ] if model == "progan" else []
    _, b = stop_and_resume(tmp_path, [*TINY, f"model={model}", "dataset.count=64", *extra], auto=True)
    assert b["config"]["resume"] == str(tmp_path / "part")


def test_resume_auto_extends_a_run_and_refuses_a_directory_holding_another(tmp_path):
    """More steps continue the run (its schedule's horizon, an interpolation of train.steps, stays stored);
    a command whose config differs is refused, naming the key."""
    command = [*TINY, "train.steps=2", "dataset.count=32", "resume=auto"]
    run(compose_train(command), tmp_path, overrides=command)
    longer = [*command, "train.steps=4"]
    run(compose_train(longer), tmp_path, overrides=longer)
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 4 and state["config"]["schedule"]["total_steps"] == 2
    other = [*longer, "loss=minimax"]
    with pytest.raises(ConfigError, match=r"resume=auto: .* holds a run with loss._target_="):
        run(compose_train(other), tmp_path, overrides=other)


def test_a_finished_run_killed_before_last_pt_was_linked_is_completed_by_resume(tmp_path):
    """The final step_N.pt written, the kill before last.pt was linked to it: resume=<dir> continues from step_N.pt
    (the newer checkpoint), has no step left, and still makes last.pt that checkpoint."""
    run(compose_train([*TINY, "train.steps=2", "dataset.count=32"]), tmp_path)
    ckpts = tmp_path / "checkpoints"
    (ckpts / "last.pt").unlink()
    resume = [f"resume={tmp_path}"]
    run(compose_train([*TINY, "dataset.count=32", *resume]), tmp_path, overrides=resume)
    assert (ckpts / "last.pt").samefile(ckpts / "step_0000002.pt") and checkpoint.load(tmp_path)["step"] == 2
