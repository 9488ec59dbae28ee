"""The unpaired translators (CycleGAN, DualGAN, DiscoGAN): the defining properties of their losses,
CycleGAN's image pool, network shapes, phases, and their model configs."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from gan_lab import config as config_lib
from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import LeastSquares
from gan_lab.models import cyclegan, pix2pix
from gan_lab.models.translation import ImagePool, cycle_losses, identity_losses
from tests.conftest import compose_train

# ---------------------------------------------------------------- helpers


class Permute(nn.Module):
    """A generator that permutes the channels: exactly invertible."""

    def __init__(self, order):
        super().__init__()
        self.order = list(order)

    def forward(self, x):
        return x[:, self.order]


class Stub(nn.Module):
    """A "network" that passes its input through, with one parameter so optimizers and ``device`` work."""

    def __init__(self, **_):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x


def unpaired_batch(n=2, size=32, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(n, channels, size, size, generator=g) * 2 - 1,
            "B": torch.rand(n, channels, size, size, generator=g) * 2 - 1}


def tiny_cyclegan(pool_size=50, seed=0, size=32, **kw):
    return cyclegan.CycleGAN(
        lambda **c: cyclegan.ResnetGenerator(**c, image_size=size, width=4, n_blocks=1),
        lambda **c: pix2pix.Discriminator(**c, width=4, n_layers=2, image_size=size, norm="instance"),
        LeastSquares(), pool_size=pool_size, seed=seed, **kw)


def serialised(state: dict) -> dict:
    """``state`` after a checkpoint's save and ``weights_only`` load."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# ---------------------------------------------------------------- cycle and identity losses


def test_cycle_loss_is_zero_exactly_for_inverse_maps_and_positive_otherwise():
    batch = unpaired_batch()
    inverse = nn.ModuleDict({"AB": Permute([1, 2, 0]), "BA": Permute([2, 0, 1])})
    fake_A, fake_B = inverse["BA"](batch["B"]), inverse["AB"](batch["A"])
    assert [float(v) for v in cycle_losses(inverse, batch["A"], batch["B"], fake_A, fake_B)] == [0.0, 0.0]

    same = nn.ModuleDict({"AB": Permute([1, 2, 0]), "BA": Permute([1, 2, 0])})  # (1 2 0) twice is not identity
    fake_A, fake_B = same["BA"](batch["B"]), same["AB"](batch["A"])
    assert all(float(v) > 0.1 for v in cycle_losses(same, batch["A"], batch["B"], fake_A, fake_B))


def test_identity_loss_is_zero_for_identity_generators_only():
    batch = unpaired_batch()
    identity = nn.ModuleDict({"AB": nn.Identity(), "BA": nn.Identity()})
    assert [float(v) for v in identity_losses(identity, batch["A"], batch["B"])] == [0.0, 0.0]
    swap = nn.ModuleDict({"AB": Permute([1, 2, 0]), "BA": Permute([2, 0, 1])})
    assert all(float(v) > 0.1 for v in identity_losses(swap, batch["A"], batch["B"]))


def test_identity_loss_between_domains_of_other_channels_is_a_config_error_naming_both_keys():
    with pytest.raises(ConfigError, match=r"model.channels_A=1 and model.channels_B=3"):
        tiny_cyclegan(channels_A=1, channels_B=3)
    task = tiny_cyclegan(channels_A=1, channels_B=3, lambda_identity=0.0)
    assert task.G["AB"](torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    assert task.G["BA"](torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)


# ---------------------------------------------------------------- image pool


def images(values, size=4):
    """One (1, size, size) image per value, filled with it."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, size, size).clone()


def test_pool_of_size_zero_passes_the_batch_through():
    pool = ImagePool(0)
    x = torch.randn(3, 1, 4, 4, requires_grad=True)
    out = pool.query(x)
    assert torch.equal(out, x) and not out.requires_grad and pool.count == 0


def test_pool_returns_and_stores_images_until_full():
    pool = ImagePool(50, seed=0)
    for start in range(0, 50, 10):
        batch = images(range(start, start + 10))
        assert torch.equal(pool.query(batch), batch)
    assert pool.count == 50
    assert torch.equal(torch.stack(pool.images), images(range(50)))
    # within one batch too: the images that fill the pool come back unchanged
    pool = ImagePool(50, seed=0)
    batch = images(range(60))
    out = pool.query(batch)
    assert torch.equal(out[:50], batch[:50]) and pool.count == 50 and out.shape == batch.shape


def test_full_pool_returns_a_stored_image_half_of_the_time():
    pool = ImagePool(50, seed=1)
    pool.query(images(range(50)))
    n, from_history = 4000, 0
    for i in range(n):
        new = 1000.0 + i  # every image is distinct, so a returned value tells where it came from
        out = pool.query(images([new]))
        assert out.shape == (1, 1, 4, 4) and pool.count == 50
        value = float(out[0, 0, 0, 0])
        if value != new:
            from_history += 1
            assert new in [float(im[0, 0, 0]) for im in pool.images]  # the new image took the slot
    bound = 4 * (0.25 / n) ** 0.5  # four binomial standard deviations
    assert abs(from_history / n - 0.5) < bound


def test_pool_returns_clones_and_stores_copies():
    pool = ImagePool(2, seed=0)
    batch = images([1.0, 2.0])
    pool.query(batch)
    batch.fill_(-1.0)  # the caller's tensor changes: the pool's copies do not
    assert sorted(float(im[0, 0, 0]) for im in pool.images) == [1.0, 2.0]
    returned = [pool.query(images([10.0 + i])) for i in range(40)]
    old = [r for r in returned if float(r[0, 0, 0, 0]) < 10.0]
    assert old, "a full pool of 2 returned no stored image in 40 draws"
    for im in pool.images:
        im.fill_(99.0)  # later changes of the pool do not reach what it returned
    assert all(float(r[0, 0, 0, 0]) in (1.0, 2.0) or float(r[0, 0, 0, 0]) >= 10.0 for r in returned)
    assert all(float(r.max()) < 99.0 for r in old)


def test_pool_output_is_detached():
    pool = ImagePool(4, seed=0)
    x = torch.randn(6, 1, 4, 4, requires_grad=True)
    out = pool.query(x * 2)
    assert not out.requires_grad and out.shape == x.shape
    assert all(not im.requires_grad for im in pool.images)


def test_pool_resumes_exactly_through_the_task_state_dict():
    task = tiny_cyclegan(seed=3)
    for i in range(70):  # past full, so the generator state has moved
        task.pools["A"].query(images([float(i)], size=32).expand(-1, 3, -1, -1))
        task.pools["B"].query(images([float(-i)], size=32).expand(-1, 3, -1, -1))
    state = serialised(task.state_dict())
    assert {"pools.A._extra_state", "pools.B._extra_state"} <= set(state)
    fresh = tiny_cyclegan(seed=11)  # another seed: the restored generator state must win
    fresh.load_state_dict(state)
    assert fresh.pools["A"].count == 50
    for i in range(30):
        x = images([100.0 + i, 200.0 + i], size=32).expand(-1, 3, -1, -1)
        for domain in "AB":
            assert torch.equal(task.pools[domain].query(x), fresh.pools[domain].query(x))
    assert all(torch.equal(a, b) for a, b in zip(task.pools["A"].images, fresh.pools["A"].images))


def test_pool_state_of_more_images_than_its_size_is_refused():
    state = ImagePool(10, seed=0)
    state.query(images(range(10)))
    with pytest.raises(ValueError, match="more than model.pool_size=5"):
        ImagePool(5).set_extra_state(state.get_extra_state())


# ---------------------------------------------------------------- CycleGAN task


def test_cyclegan_players_and_phases():
    task = tiny_cyclegan()
    players = task.players()
    assert set(players) == {"G", "D"}
    assert set(players["G"]) == {"AB", "BA"} and set(players["D"]) == {"A", "B"}
    assert players["G"] is task.G and players["D"] is task.D
    phases = task.phases(1, 5)  # n_critic is not used: one D update per step
    assert [p.player for p in phases] == ["G", "D"]
    assert [p.repeats for p in phases] == [1, 1]
    assert phases[1].fresh_batch is False and phases[0].hand_off is None


def test_cyclegan_g_phase_hands_detached_fakes_and_reaches_only_the_generators():
    task = tiny_cyclegan()
    batch = unpaired_batch()
    task.D.requires_grad_(False)  # as the engine freezes it
    out = task.g_loss(batch)
    assert set(out.carry) == {"fake_A", "fake_B"}
    assert not out.carry["fake_A"].requires_grad and not out.carry["fake_B"].requires_grad
    assert torch.allclose(out.carry["fake_B"], task.G["AB"](batch["A"]))
    out.loss.backward()
    assert all(p.grad is not None for p in task.G.parameters())
    for key in ("loss/G", "loss/G_AB", "loss/G_BA", "loss/G_cycle_A", "loss/G_cycle_B", "loss/G_idt_A", "loss/G_idt_B"):
        assert key in out.stats


def test_cyclegan_least_squares_objective_with_stub_networks():
    """With identity generators and discriminators, real A = a and real B = b everywhere: D_B sees b (real)
    and G_AB(A) = a (fake), so D = ½[(b-1)² + a²] + ½[(a-1)² + b²] (the halved objective, targets 1 / 0), the
    cycle and identity terms vanish, and G = (a-1)² + (b-1)² (target 1, the code's MSE)."""
    task = cyclegan.CycleGAN(Stub, Stub, LeastSquares(), pool_size=0, adversarial_weight=2.0, d_weight=1.0)
    a, b = 0.3, -0.6
    batch = {"A": torch.full((2, 3, 8, 8), a), "B": torch.full((2, 3, 8, 8), b)}
    g = task.g_loss(batch)
    assert g.loss.item() == pytest.approx((a - 1) ** 2 + (b - 1) ** 2)
    assert g.stats["loss/G_cycle_A"] == 0 and g.stats["loss/G_idt_B"] == 0
    d = task.d_loss(batch, g.carry)
    assert d.loss.item() == pytest.approx(0.5 * ((b - 1) ** 2 + a**2) + 0.5 * ((a - 1) ** 2 + b**2))
    assert d.stats["loss/D_B"].item() == pytest.approx(0.5 * ((b - 1) ** 2 + a**2))


def test_cyclegan_d_phase_judges_pooled_fakes():
    task = tiny_cyclegan(seed=0)
    stored = -0.25  # a full pool of constant images, unlike any generator output
    for domain in "AB":
        task.pools[domain].set_extra_state({"images": torch.full((50, 3, 32, 32), stored), "count": 50,
                                            "rng": torch.Generator().manual_seed(5).get_state()})
    seen = []
    task.D["B"].register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    batch = unpaired_batch(n=8)
    g = task.g_loss(batch)
    seen.clear()
    pooled = task.d_loss(batch, g.carry)
    real, fake = seen  # D_B(real B), then D_B(the pooled G_AB(A))
    assert torch.equal(real, batch["B"])
    from_pool = [bool((im == stored).all()) for im in fake]
    from_carry = [bool(torch.equal(im, c)) for im, c in zip(fake, g.carry["fake_B"])]
    assert any(from_pool) and any(from_carry) and all(p or c for p, c in zip(from_pool, from_carry))
    # the stored images changed D's loss against judging the newest fakes only
    plain, _ = task.discriminate(batch, g.carry["fake_A"], g.carry["fake_B"])
    assert pooled.loss.item() != pytest.approx(plain.item())
    # and the newest fakes went into the pool in place of the returned ones
    assert sum(not bool((im == stored).all()) for im in task.pools["B"].images) == sum(from_pool)


def test_cyclegan_sample_and_visuals():
    task = cyclegan.CycleGAN(Stub, Stub, LeastSquares())
    task.G = nn.ModuleDict({"AB": Permute([1, 2, 0]), "BA": Permute([1, 2, 0])})
    batch = unpaired_batch(n=4)
    fixed = task.fixed_inputs(batch, 3)
    assert fixed["A"].shape == (3, 3, 32, 32) and torch.equal(fixed["B"], batch["B"][:3])
    x = batch["B"]
    assert torch.equal(task.sample(4, task.G, input=x, direction="AtoB")["samples"], x[:, [1, 2, 0]])
    assert torch.equal(task.sample(4, task.G, input=x, direction="BtoA")["samples"], x[:, [1, 2, 0]])
    with pytest.raises(ValueError, match="direction"):
        task.sample(4, task.G, input=x, direction="AB")
    grids = task.visuals(fixed, task.G)
    assert set(grids) == {"AtoB", "BtoA"}
    grid = grids["AtoB"]
    assert grid.images.shape == (9, 3, 32, 32) and grid.nrow == 3
    a = fixed["A"][0:1]
    assert torch.equal(grid.images[0:1], a)
    assert torch.equal(grid.images[1:2], a[:, [1, 2, 0]])
    assert torch.equal(grid.images[2:3], a[:, [2, 0, 1]])  # G_BA(G_AB(a)): the permutation applied twice
    assert torch.equal(grids["BtoA"].images[0:1], fixed["B"][0:1])


# ---------------------------------------------------------------- networks


@pytest.mark.parametrize("size,n_layers,side", [(256, 3, 30), (128, 3, 14), (64, 3, 6), (64, 2, 14), (32, 2, 6),
                                                (32, 1, 14), (256, 1, 126)])
def test_patchgan_output_size(size, n_layers, side):
    D = pix2pix.Discriminator(in_channels=3, width=4, n_layers=n_layers, image_size=size, norm="instance")
    assert D(torch.zeros(1, 3, size, size)).shape == (1, 1, side, side)
    assert pix2pix._patch_grid(size, n_layers) == side


@pytest.mark.parametrize("n_layers,field", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field(n_layers, field):
    """Each logit sees ``field`` x ``field`` input pixels (norm off: instance norm's statistics span the image)."""
    D = pix2pix.Discriminator(in_channels=1, width=2, n_layers=n_layers, norm="none").double()
    x = torch.randn(1, 1, 128, 128, dtype=torch.float64, requires_grad=True)
    out = D(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = (x.grad[0, 0] != 0).nonzero(as_tuple=True)
    assert (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1) == (field, field)


def test_patchgan_norm_option_keeps_the_batch_norm_default():
    assert any(isinstance(m, nn.BatchNorm2d) for m in pix2pix.Discriminator(width=4).modules())
    instance = pix2pix.Discriminator(width=4, norm="instance")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in instance.modules())
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in instance.modules()) == 3


@pytest.mark.parametrize("size,in_ch,out_ch", [(32, 3, 3), (64, 3, 3), (36, 1, 3)])
def test_resnet_generator_keeps_the_image_shape(size, in_ch, out_ch):
    G = cyclegan.ResnetGenerator(in_ch, out_ch, image_size=size, width=4)
    y = G(torch.randn(2, in_ch, size, size))
    assert y.shape == (2, out_ch, size, size) and y.abs().max() <= 1


def test_resnet_generator_layout():
    assert cyclegan.ResnetGenerator(image_size=128, width=2).n_blocks == 6
    assert cyclegan.ResnetGenerator(image_size=256, width=2).n_blocks == 9
    assert cyclegan.ResnetGenerator(image_size=32, width=2, n_blocks=3).n_blocks == 3
    G = cyclegan.ResnetGenerator(image_size=32, width=2)
    norms = [m for m in G.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and not any(m.affine or m.track_running_stats for m in norms)
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in G.modules()) == 2 + 2 * 6
    with pytest.raises(ConfigError, match="dataset.image_size=30"):
        cyclegan.ResnetGenerator(image_size=30)


# ---------------------------------------------------------------- configs


def build(overrides):
    cfg = compose_train(overrides)
    config_lib.validate(cfg)
    loss = config_lib.instantiate_group(cfg.loss, "loss")
    return cfg, config_lib.instantiate_group(cfg.model, "model", loss=loss)


def test_cyclegan_config_composes_and_instantiates():
    cfg, task = build(["model=cyclegan"])
    assert isinstance(task, cyclegan.CycleGAN) and isinstance(task.loss, LeastSquares)
    assert cfg.dataset._target_.endswith("ShapesUnpaired") and cfg.train.batch_size == 1
    assert cfg.schedule._target_.endswith("LinearDecay") and cfg.schedule.start == 0.5
    assert cfg.optim.G.lr == 2e-4 and list(cfg.optim.D.betas) == [0.5, 0.999]
    assert (task.lambda_A, task.lambda_B, task.lambda_identity) == (10.0, 10.0, 0.5)
    assert task.pools["A"].size == 50 and task.G["AB"] is not task.G["BA"]
    assert task.G["AB"].n_blocks == 6
    x = unpaired_batch(n=1)
    assert task.G["BA"](x["B"]).shape == x["B"].shape
    assert task.D["A"](x["A"]).shape == (1, 1, 6, 6)
    _, task64 = build(["model=cyclegan", "dataset=facades_unpaired", "model.generator.n_blocks=2"])
    assert task64.D["B"](torch.zeros(1, 3, 64, 64)).shape == (1, 1, 14, 14)


# ---------------------------------------------------------------- DualGAN


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return self.factor * x


def test_dualgan_critic_and_generator_signs_with_stub_networks():
    """Identity generators, critics D_A(x) = x and D_B(x) = 2x, A = a and B = b everywhere: the critic loss
    is D(fake) - D(real) per domain, the generator's adversarial term -D(fake), and recovery vanishes."""
    from gan_lab.losses.adversarial import Wasserstein
    from gan_lab.models import dualgan

    task = dualgan.DualGAN(Stub, Stub, Wasserstein())
    task.D = nn.ModuleDict({"A": Scale(1.0), "B": Scale(2.0)})
    a, b = 0.3, -0.6
    batch = {"A": torch.full((1, 3, 8, 8), a), "B": torch.full((1, 3, 8, 8), b)}
    d = task.d_loss(batch)
    assert d.stats["loss/D_A"].item() == pytest.approx(b - a)  # D_A(fake A = G_BA(b) = b) - D_A(a)
    assert d.stats["loss/D_B"].item() == pytest.approx(2 * a - 2 * b)
    assert d.loss.item() == pytest.approx(a - b)
    g = task.g_loss(batch)
    assert g.stats["loss/G_recovery_A"] == 0 and g.stats["loss/G_recovery_B"] == 0
    assert g.loss.item() == pytest.approx(-2 * a - b)  # -D_B(G_AB(a)) - D_A(G_BA(b))


def test_dualgan_recovery_loss_is_l1_weighted_by_lambda():
    from gan_lab.losses.adversarial import Wasserstein
    from gan_lab.models import dualgan

    task = dualgan.DualGAN(Stub, Stub, Wasserstein(), lambda_A=500.0, lambda_B=100.0)
    task.G = nn.ModuleDict({"AB": Scale(2.0), "BA": Scale(1.0)})  # G_BA(G_AB(a)) = 2a
    task.D = nn.ModuleDict({"A": Scale(0.0), "B": Scale(0.0)})
    batch = {"A": torch.full((1, 3, 4, 4), 0.25), "B": torch.full((1, 3, 4, 4), -0.5)}
    g = task.g_loss(batch)
    assert g.stats["loss/G_recovery_A"].item() == pytest.approx(0.25)  # |2a - a|
    assert g.stats["loss/G_recovery_B"].item() == pytest.approx(0.5)  # |2b - b|
    assert g.loss.item() == pytest.approx(500 * 0.25 + 100 * 0.5)


@pytest.mark.parametrize("n_critic", [1, 2, 5])
def test_dualgan_phases_critic_n_critic_times_then_generator(n_critic):
    from gan_lab.losses.adversarial import Wasserstein
    from gan_lab.models import dualgan

    task = dualgan.DualGAN(Stub, Stub, Wasserstein())
    phases = task.phases(7, n_critic)
    assert [(p.player, p.repeats) for p in phases] == [("D", n_critic), ("G", 1)]
    assert phases[1].fresh_batch  # Algorithm 1: the generator step samples its own images
    reference = dualgan.DualGAN(Stub, Stub, Wasserstein(), g_repeats=2, fresh_g_batch=False).phases(1, 1)
    assert [(p.player, p.repeats, p.fresh_batch) for p in reference] == [("D", 1, True), ("G", 2, False)]


def dualgan_cfg(overrides=()):
    return build(["model=dualgan", *overrides])


def test_dualgan_config_and_clipped_critics_through_the_trick():
    from gan_lab.models import dualgan

    cfg, task = dualgan_cfg()
    assert isinstance(task, dualgan.DualGAN) and cfg.loss._target_.endswith("Wasserstein")
    assert cfg.train.n_critic == 2 and cfg.train.batch_size == 1 and (task.lambda_A, task.lambda_B) == (500, 500)
    assert cfg.optim.D._target_ == "torch.optim.RMSprop" and cfg.optim.G.lr == 5e-5
    assert isinstance(task.G["AB"], pix2pix.Generator) and isinstance(task.D["B"], pix2pix.Discriminator)
    tricks = config_lib.instantiate_tricks(cfg.tricks, task)
    assert set(tricks) == {"weight_clipping"} and tricks["weight_clipping"].c == 0.01
    for trick in tricks.values():
        trick.setup(task)
    # one critic step with a large rate, then the engine's hook: every weight of both critics in [-c, c]
    opt = torch.optim.SGD(task.D.parameters(), lr=10.0)
    task.G.requires_grad_(False)
    opt.zero_grad()
    task.d_loss(unpaired_batch(n=1)).loss.backward()
    opt.step()
    assert max(float(p.detach().abs().max()) for p in task.D.parameters()) > 0.01
    tricks["weight_clipping"].after_phase(task, "D", 1)
    for domain in "AB":
        assert all(float(p.detach().abs().max()) <= 0.01 for p in task.D[domain].parameters())
    assert max(float(p.detach().abs().max()) for p in task.G.parameters()) > 0.01  # the generators are not clipped


def test_dualgan_reference_2017_preset_composes_without_clipping():
    cfg, task = dualgan_cfg(["loss=nonsaturating", "~tricks.weight_clipping", "train.n_critic=1",
                             "model.g_repeats=2", "model.fresh_g_batch=false"])
    assert "weight_clipping" not in cfg.tricks
    assert [(p.player, p.repeats) for p in task.phases(1, cfg.train.n_critic)] == [("D", 1), ("G", 2)]


def test_dualgan_generator_normalises_each_sample_on_its_own():
    """Instance norm (the code's per-sample "batch_norm"): sample 0's output ignores sample 1, in train mode."""
    G = pix2pix.Generator(3, 3, image_size=32, width=4, dropout=0.0, norm="instance_affine")
    assert any(isinstance(m, nn.InstanceNorm2d) and m.affine for m in G.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in G.modules())
    x = torch.randn(2, 3, 32, 32)
    y = x.clone()
    y[1] = torch.randn(3, 32, 32)
    assert torch.allclose(G(x)[0], G(y)[0], atol=1e-6)
    assert G(x).shape == x.shape


def test_unet_norm_option_keeps_the_batch_norm_default():
    torch.manual_seed(0)
    a = pix2pix.Generator(3, 3, image_size=32, width=4)
    torch.manual_seed(0)
    b = pix2pix.Generator(3, 3, image_size=32, width=4, norm="batch")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in a.modules()) == 3 + 4  # encoder 2..4, decoder 1..4


# ---------------------------------------------------------------- DiscoGAN


def test_discogan_curriculum_rate_switches_at_iteration_10000():
    from gan_lab.models.discogan import curriculum_rate

    assert curriculum_rate(0) == 0.01 and curriculum_rate(9999) == 0.01
    assert curriculum_rate(10000) == 0.5 and curriculum_rate(50000) == 0.5


def tiny_discogan(**kw):
    from gan_lab.losses.adversarial import NonSaturating
    from gan_lab.models import discogan

    return discogan.DiscoGAN(lambda **c: discogan.Generator(**c, image_size=32, width=4),
                             lambda **c: discogan.Discriminator(**c, image_size=32, width=4), NonSaturating(), **kw)


def test_discogan_curriculum_weights_follow_the_step():
    task = tiny_discogan(rate_start=0.01)
    # iteration i = step - 1: the code's iteration 9999 is step 10000
    assert task.weights(10000) == pytest.approx((0.99, 0.01)) and task.weights(10001) == (0.5, 0.5)
    assert tiny_discogan().weights(1) == (1.0, 1.0)  # the paper: L_GAN + L_CONST
    batch = unpaired_batch(n=4)
    early = dict(task.phases(10000, 1)[1].loss(batch, None).stats)
    late = dict(task.phases(10001, 1)[1].loss(batch, None).stats)
    assert early["recon_rate"] == 0.01 and late["recon_rate"] == 0.5


def test_discogan_feature_matching_is_zero_for_identical_batches_only():
    from gan_lab.models.discogan import feature_matching

    D = tiny_discogan().D["A"]
    x = unpaired_batch(n=4)["A"]
    _, real = D(x, return_features=True)
    _, same = D(x.clone(), return_features=True)
    assert len(real) == 2  # the normalised hidden layers at 32 px
    assert feature_matching(real, same).item() == 0.0
    _, other = D(-x, return_features=True)
    assert feature_matching(real, other).item() > 0
    task = tiny_discogan(fm_weight=0.9)
    assert "loss/G_fm_B" in task.g_loss(unpaired_batch(n=4)).stats


def test_discogan_update_pattern_and_players():
    task = tiny_discogan(d_every=3)
    pattern = ["".join(p.player for p in task.phases(step, 1)) for step in range(1, 8)]
    assert pattern == ["D", "G", "G", "D", "G", "G", "D"]
    assert all(p.fresh_batch for step in range(1, 8) for p in task.phases(step, 1))
    assert [(p.player, p.fresh_batch) for p in tiny_discogan().phases(1, 1)] == [("D", True), ("G", False)]
    assert set(task.players()["G"]) == {"AB", "BA"} and set(task.players()["D"]) == {"A", "B"}


def test_discogan_reconstruction_is_mse_and_zero_for_inverse_maps():
    task = tiny_discogan()
    task.G = nn.ModuleDict({"AB": Permute([1, 2, 0]), "BA": Permute([2, 0, 1])})
    stats = task.g_loss(unpaired_batch(n=2)).stats
    assert stats["loss/G_recon_A"] == 0 and stats["loss/G_recon_B"] == 0
    task.G = nn.ModuleDict({"AB": Scale(2.0), "BA": Scale(1.0)})
    batch = {"A": torch.full((2, 3, 32, 32), 0.25), "B": torch.full((2, 3, 32, 32), -0.5)}
    assert task.g_loss(batch).stats["loss/G_recon_A"].item() == pytest.approx(0.25**2)


@pytest.mark.parametrize("size,downs", [(32, 3), (64, 4)])
def test_discogan_networks_per_image_size(size, downs):
    from gan_lab.models import discogan

    G = discogan.Generator(3, 3, image_size=size, width=4)
    D = discogan.Discriminator(3, image_size=size, width=4)
    x = torch.randn(2, 3, size, size)
    y = G(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert D(y).shape == (2,)
    assert sum(isinstance(m, nn.Conv2d) for m in G.modules()) == downs
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in G.modules()) == downs
    assert len(D(x, return_features=True)[1]) == downs - 1
    with_code = discogan.Generator(3, 3, image_size=size, width=4, bottleneck=8)
    assert with_code(x).shape == x.shape
    with pytest.raises(ConfigError, match="dataset.image_size=48"):
        discogan.Generator(image_size=48)


def test_discogan_config_composes_and_instantiates():
    from gan_lab.losses.adversarial import NonSaturating
    from gan_lab.models import discogan

    cfg, task = build(["model=discogan"])
    assert isinstance(task, discogan.DiscoGAN) and isinstance(task.loss, NonSaturating)
    assert cfg.optim.G.weight_decay == 1e-5 and task.rate_start is None and task.d_every == 1
    x = unpaired_batch(n=2)
    assert task.G["AB"](x["A"]).shape == x["A"].shape and task.D["B"](x["B"]).shape == (2,)
    _, reference = build(["model=discogan", "model.fm_weight=0.9", "model.rate_start=0.01", "model.d_every=3"])
    assert [p.player for p in reference.phases(2, 1)] == ["G"]
