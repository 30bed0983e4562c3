"""Schedule values at chosen steps, and the presets' curricula against SPEC §1."""

import pytest

import gnm.config
from gnm.config import Config, set_override, to_dict
from gnm.presets import get_preset
from gnm.schedule import Schedule


def test_linear_schedule_values():
    s = Schedule(1000, 20000, 1.0, 0.5)
    assert s(0) == 1.0
    assert s(1000) == 1.0
    assert s(10500) == pytest.approx(0.75)
    assert s(20000) == 0.5
    assert s(10**7) == 0.5


def test_step_function_and_constant():
    s = Schedule.until(500, 0.9)
    assert (s(0), s(500), s(501), s(10**6)) == (0.9, 0.9, 0.0, 0.0)
    c = Schedule.constant(3.0)
    assert (c(0), c(123), c(10**9)) == (3.0, 3.0, 3.0)


def test_schedule_is_reexported_by_gnm_config():
    assert gnm.config.Schedule is Schedule


def test_mnist_curriculum_matches_spec():
    m = get_preset("mnist4").model
    assert (m.tau(0), m.tau(1000), m.tau(20000)) == (1.0, 1.0, 0.5)
    assert m.tau(10500) == pytest.approx(0.75)
    assert m.rho(0) == pytest.approx(0.1)
    assert m.rho(2000) == pytest.approx(0.0505)
    assert m.rho(4000) == pytest.approx(0.001)
    assert m.beta_g_warmup(0) == 0.0
    assert m.beta_g_warmup(50_000) == pytest.approx(0.5)
    assert m.beta_g_warmup(100_000) == 1.0
    # MNIST: no background, no mask forcing, aux-where weight 1.
    assert not m.background
    assert m.alpha_force(0) == 0.0
    assert m.aux_where_weight(0) == 1.0


def test_cpu_recipe_global_kl_warmup_starts_after_the_objects_appear():
    """mnist4-cpu: global-KL weight exactly 0 up to step 2,000, then linear to beta 2 at 20k."""
    m = get_preset("mnist4-cpu").model
    assert m.beta_g == 2.0
    assert all(m.beta_g * m.beta_g_warmup(t) == 0.0 for t in range(0, 2001))
    assert m.beta_g * m.beta_g_warmup(2001) == pytest.approx(2 / 18_000)
    assert m.beta_g * m.beta_g_warmup(11_000) == pytest.approx(1.0)
    assert m.beta_g * m.beta_g_warmup(20_000) == 2.0 == m.beta_g * m.beta_g_warmup(38_000)


def test_old_cpu_warmup_gave_beta1_weight_until_10k():
    """The README's branched runs (warm-up from step 0, before it moved to step 2,000) rest on
    this: beta 2 warmed up over 0-20k gives the global KL exactly (bit for bit) the weight
    t / 10k that beta 1 over 10k steps gives."""
    old = Schedule(0, 20_000, 0.0, 1.0)
    beta1 = Schedule(0, 10_000, 0.0, 1.0)
    assert all(2.0 * old(t) == 1.0 * beta1(t) for t in range(0, 10_001))
    assert 2.0 * old(15_000) == pytest.approx(1.5)
    assert 2.0 * old(20_000) == 2.0


def test_arrow_curriculum_matches_spec():
    m = get_preset("arrow").model
    assert m.beta_b(0) == 50.0
    assert m.beta_b(25_000) == pytest.approx(25.5)
    assert m.beta_b(50_000) == 1.0
    assert m.aux_where_weight(0) == 10.0
    assert m.aux_where_weight(250) == pytest.approx(5.5)
    assert m.aux_where_weight(500) == 1.0
    assert m.alpha_force(0) == pytest.approx(0.9)
    assert m.alpha_force(500) == pytest.approx(0.9)
    assert m.alpha_force(501) == 0.0


def test_schedules_survive_dict_round_trip_and_overrides():
    cfg = get_preset("arrow")
    again = Config.from_dict(to_dict(cfg))
    assert isinstance(again.model.beta_b, Schedule)
    assert again.model.beta_b == cfg.model.beta_b
    set_override(again, "model.tau.end=0.3")
    assert again.model.tau(10**6) == pytest.approx(0.3)


def test_old_mask_forcing_key_is_dropped_when_off_and_refused_when_on():
    from gnm.errors import GNMError

    base = {"data": {"dataset": "arrow", "size": 64, "channels": 3}}
    off = {"start_step": 0, "end_step": 0, "start": 0.0, "end": 0.0}
    cfg = Config.from_dict({**base, "model": {"fg_mask_force": off}})
    assert cfg.model.alpha_force(0) == 0.0
    on = {"start_step": 500, "end_step": 500, "start": 0.9, "end": 0.0}
    with pytest.raises(GNMError, match="alpha_force"):
        Config.from_dict({**base, "model": {"fg_mask_force": on}})
