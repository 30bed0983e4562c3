"""Named configurations: the paper's models and CPU-scale variants.

``get_preset(name)`` returns a fresh :class:`gnm.config.Config`; only its ``data`` and ``model``
sections are set here (the trainer fills ``train``). Names are case-insensitive and ``-``/``_``
are interchangeable (``mnist4-cpu`` == ``mnist4_cpu``).

Paper scale (128 px, SPEC §1; parameter counts close to the paper's Table 5):

* ``mnist4``, ``mnist10``, ``mnist4_10`` - the MNIST GNM (≈2.9M parameters): 1 channel, no
  background (black), no decoded mask (m = 1), z_what 20, 32-px glimpses, ConvLSTM/feature
  width 64, where-prior scale mean −1.6.
* ``arrow`` - the Arrow Room GNM (≈8.6M): 3 channels, background (z_b 10) with β_b 50 → 1 over
  50k steps, decoded masks, z_what 64, 64-px glimpses, width 128, where-prior scale mean −1.5,
  aux-where weight 10 → 1 over 500 steps and the foreground alpha forced to 0.9 over the first
  500 steps (the reference's bg-alpha curriculum: the objects must draw the scene).

CPU scale (``mnist4-cpu``, ``mnist10-cpu``, ``mnist4_10-cpu``), for training on a few cores, and
``mnist4-cpu-gaussian``, the GNM-Gaussian ablation of ``mnist4-cpu`` (p(z_g) = N(0, I) instead of
StructDRAW, everything else the same). Relative to the paper MNIST model they change: 64-px
images (7 encoder convs, 16-px glimpses); a shorter curriculum (τ over steps 500-5k, ρ over
0-1k, β_g warm-up over 2k-20k); pixel σ 0.1; β = 2 on the global KL (GNM-β-2); Adam 3e-4
decayed linearly to 3e-5 from step 40k to the end, batch 16, 56k steps (96 min alone on a
2-core AVX-512 CPU). Why each change, with the measurements behind it:
docs/results/HISTORY.md, "Why the CPU recipe is what it is".

Baselines (paper App. D.2; each on MNIST-4, ``--set data.dataset=mnist10`` for another):
``vae`` (1.42M parameters; paper 1.5M), ``convdraw`` (1.43M; paper 1.5M; ``draw_steps`` 8 and
``beta`` 10 are the paper's variants), ``convdraw-mlp`` (ConvDRAW with StructDRAW's interaction
MLP), ``genesis`` (13.96M; paper 13.9M; K = ``components`` 5, β = 10) and ``space`` (GNM's object
map with fixed priors, no sampling), at 128 px; each with a ``-cpu`` twin at 64 px trained with
the GNM CPU recipe's training section (Adam 3e-4, batch 16, 56k steps, the same decay) and, for
the Gaussian-pixel models, σ 0.1 (GENESIS keeps its mixture σ 0.7; ``genesis-cpu`` has
16-channel decoders and 20k steps under a two-hour limit, see :func:`_genesis_cpu`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from gnm.config import Config, DataConfig, TrainConfig
from gnm.errors import GNMError
from gnm.models.config import ModelConfig
from gnm.schedule import Schedule


def _mnist_model() -> ModelConfig:
    return ModelConfig()  # the defaults are the paper MNIST model


def _mnist(dataset: str) -> Callable[[], Config]:
    return lambda: Config(data=DataConfig(dataset=dataset, size=128), model=_mnist_model())


def _arrow() -> Config:
    model = ModelConfig(
        enc_filters=(16, 16, 32, 32, 64, 64, 128, 128, 128),
        draw_hidden=128, draw_input=128, gdec_hidden=(512, 1024),
        struct_hidden=(128, 128), z_what_dim=64,
        glimpse_filters=(128, 64, 32, 16, 8), glimpse_kernels=(3, 3, 3, 3, 3, 3),
        glimpse_upscales=(2, 2, 2, 2, 2, 2), glimpse_mask=True,
        background=True,
        where_prior_mean=(-1.5, 0.0, 0.0, 0.0),
        aux_where_weight=Schedule(0, 500, 10.0, 1.0),
        alpha_force=Schedule.until(500, 0.9),
    )
    return Config(data=DataConfig(dataset="arrow", size=128, channels=3), model=model)


#: the CPU recipe's object-map settings (GNM and SPACE): 64-px encoder and glimpses, curriculum
_CPU_MAP = dict(
    enc_filters=(16, 16, 32, 32, 64, 64, 64), enc_kernels=(4, 3, 4, 3, 4, 3, 4),
    enc_strides=(2, 1, 2, 1, 2, 1, 2),
    glimpse_filters=(64, 32, 16, 8), glimpse_kernels=(1, 1, 1, 3, 3),
    glimpse_upscales=(4, 2, 2, 1, 1),
    tau=Schedule(500, 5000, 1.0, 0.5), rho=Schedule(0, 1000, 0.1, 0.001), sigma=0.1)


#: the CPU recipe's warm-up factor on the global KL (GNM's β_g; ConvDRAW's β)
_CPU_WARMUP = Schedule(2000, 20_000, 0.0, 1.0)


def _cpu_train() -> TrainConfig:
    """The CPU recipe's training section (every CPU preset, baselines included)."""
    return TrainConfig(steps=56_000, optimizer="adam", lr=3e-4, batch_size=16,
                       lr_scale=Schedule(40_000, -1, 1.0, 0.1),  # -1: train.steps
                       ckpt_every=2000, log_every=100, judge_every=2000, judge_n=200)


def _mnist_cpu(dataset: str, global_prior: str = "structdraw") -> Callable[[], Config]:
    def make() -> Config:
        model = ModelConfig(**copy.deepcopy(_CPU_MAP), beta_g_warmup=copy.copy(_CPU_WARMUP),
                            beta_g=2.0, global_prior=global_prior)
        return Config(data=DataConfig(dataset=dataset, size=64), model=model, train=_cpu_train())
    return make


def _arrow_cpu() -> Config:
    """The Arrow Room at 64 px: the CPU recipe's object map with the paper's Arrow settings
    (z_what 64, glimpse masks, the background with its β_b curriculum, where-prior scale −1.5,
    aux-where weight 10 → 1 and the foreground alpha forced to 0.9 over the first 500 steps); 3.62M
    parameters. Render a training set first with `gnm data make arrow --size 64` and pass it
    as ``--set data.path=DIR`` (rendering on the fly costs more than a training step). Its
    results, shortened to 40k steps, are README rows 7 (scene version 1, S-Acc 0.025) and 8
    (version 2, 0.089; docs/results/HISTORY.md): the recipe does not yet learn the rule, and
    its reconstructions of test scenes follow it in only 14% of them."""
    model = ModelConfig(**copy.deepcopy(_CPU_MAP), beta_g_warmup=copy.copy(_CPU_WARMUP),
                        beta_g=2.0, z_what_dim=64, glimpse_mask=True, background=True,
                        bg_upscales=(4, 2, 2, 2, 2, 1), where_prior_mean=(-1.5, 0.0, 0.0, 0.0),
                        aux_where_weight=Schedule(0, 500, 10.0, 1.0),
                        alpha_force=Schedule.until(500, 0.9))
    return Config(data=DataConfig(dataset="arrow", size=64, channels=3), model=model,
                  train=_cpu_train())


# ---------------------------------------------------------------------------- baselines
#: 64-px variants of the baselines' Table 6 encoder and Table 10 / 11 decoders (one ×2 stage
#: fewer each), for the CPU presets
_CPU_ENC = dict(enc_filters=(16, 16, 32, 32, 64, 64, 128), enc_kernels=(4, 3, 4, 3, 4, 3, 4),
                enc_strides=(2, 1, 2, 1, 2, 1, 2))
_CPU_VAE_DEC = dict(dec_filters=(128, 128, 64, 64, 32, 32, 16, 16, 8),
                    dec_kernels=(1, 3, 1, 3, 1, 3, 1, 3, 1, 3),
                    dec_upscales=(4, 1, 2, 1, 2, 1, 2, 1, 2, 1))
_CPU_DRAW_DEC = dict(dec_filters=(128, 64, 64, 32, 32, 16, 16, 8),
                     dec_kernels=(3, 1, 3, 1, 3, 1, 3, 1, 3),
                     dec_upscales=(1, 2, 1, 2, 1, 2, 1, 2, 1))


def _baseline(name: str, cpu: bool, **fields) -> Callable[[], Config]:
    """A baseline preset on MNIST-4: paper scale (128 px, σ 0.2) or the CPU recipe (64 px,
    σ 0.1, the training section of the GNM CPU recipe)."""
    def make() -> Config:
        from gnm.models.registry import config_class

        model = config_class(name)(**copy.deepcopy(fields))  # no Schedule shared by two configs
        if not cpu:
            return Config(data=DataConfig(dataset="mnist4", size=128), model=model)
        return Config(data=DataConfig(dataset="mnist4", size=64), model=model, train=_cpu_train())
    return make


def _genesis_cpu() -> Config:
    """GENESIS at 64 px with 16-channel component broadcast decoders, a sub-pixel mask decoder,
    20k steps (lr decay from 14k) and a two-hour wall-clock limit: its step costs about 6× a
    ConvDRAW step (every component decodes a full-size image), so the 56k-step recipe would
    take far longer than two hours.

    Pixel σ 0.1 (as the other CPU baselines) and the CPU KL warm-up: with the official σ 0.7 a
    perfect reconstruction of a 64-px MNIST-4 scene gains only about 73 nats over the black
    image, less than β = 10 times any useful KL, so the posterior collapsed (KL 0 from step
    1.2k to 13.5k, recorded in docs/results/genesis-cpu-collapsed). At σ 0.1 the per-pixel
    mixture likelihood has an optimum that needs no latent at all (a "palette": one black
    component filling the image, the others flat grey; about 4,800 nats on MNIST-4), and with
    a 16-channel *broadcast* mask decoder every run stayed there, even one whose only goal was
    the reconstruction (GECO with λ at its bound): such a decoder cannot draw digit-shaped
    masks. The sub-pixel mask decoder (``model.mask_decoder="subpixel"``, ×64 in five
    sub-pixel convs) passed the palette by step 500 (5,037 nats)."""
    cfg = _baseline("genesis", True, mask_decoder="subpixel", mask_dec_upscales=(4, 2, 2, 2, 2),
                    comp_dec_channels=16, sigma=0.1, beta_warmup=_CPU_WARMUP)()
    cfg.train.steps, cfg.train.time_limit_s = 20_000, 7200
    cfg.train.lr_scale = Schedule(14_000, -1, 1.0, 0.1)
    return cfg


def _convdraw_mlp_cpu() -> Config:
    """ConvDRAW-MLP at 64 px: ConvDRAW's CPU preset with StructDRAW's interaction MLPs, at
    learning rate 1e-4 instead of the recipe's 3e-4. At 3e-4 its image encoder died within 300
    steps (f_x nearly the same map for every image: std across 32 test images 0.016 at step
    300 against 0.36 at initialisation; the posterior means then varied 0.0005 across images),
    and the reconstruction stayed at the mean image, about −2,200 nats on MNIST-10, for 24k
    steps, S-Acc 0 at every 2k (docs/results/HISTORY.md). Unlike GNM, whose encoder also
    feeds q(z_s|x), and unlike ConvDRAW, whose 2,048 per-cell latent dims per step pass the
    image on, ConvDRAW-MLP's only path from the encoder to the pixels is 32 dims per step.
    At 1e-4 the reconstruction passed the mean image by step 700 and reached +544 nats at 1.5k
    with f_x std 0.63 and posterior means 1.30 across images (probe, MNIST-10); the full
    MNIST-10 run reached S-Acc 0.011 (docs/results/convdraw-mlp-cpu-mnist10)."""
    cfg = _baseline("convdraw", True, **_CPU_ENC, **_CPU_DRAW_DEC, sigma=0.1,
                    interaction_mlp=True, beta_warmup=_CPU_WARMUP)()
    cfg.train.lr = 1e-4
    return cfg


PRESETS: dict[str, Callable[[], Config]] = {
    "mnist4": _mnist("mnist4"),
    "mnist10": _mnist("mnist10"),
    "mnist4_10": _mnist("mnist4_10"),
    "arrow": _arrow,
    "mnist4-cpu": _mnist_cpu("mnist4"),
    "mnist10-cpu": _mnist_cpu("mnist10"),
    "mnist4_10-cpu": _mnist_cpu("mnist4_10"),
    "mnist4-cpu-gaussian": _mnist_cpu("mnist4", global_prior="gaussian"),
    "arrow-cpu": _arrow_cpu,
    "vae": _baseline("vae", False),
    "vae-cpu": _baseline("vae", True, **_CPU_ENC, **_CPU_VAE_DEC, sigma=0.1),
    "convdraw": _baseline("convdraw", False),
    "convdraw-cpu": _baseline("convdraw", True, **_CPU_ENC, **_CPU_DRAW_DEC, sigma=0.1,
                              beta_warmup=_CPU_WARMUP),
    "convdraw-mlp": _baseline("convdraw", False, interaction_mlp=True),
    "convdraw-mlp-cpu": _convdraw_mlp_cpu,
    "space": _baseline("space", False),
    "space-cpu": _baseline("space", True, **_CPU_MAP),
    "genesis": _baseline("genesis", False),
    "genesis-cpu": _genesis_cpu,
}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def preset_names() -> list[str]:
    """All preset names."""
    return list(PRESETS)


def get_preset(name: str) -> Config:
    """A fresh :class:`Config` for preset ``name`` (see the module docstring)."""
    table = {_key(k): v for k, v in PRESETS.items()}
    if _key(name) not in table:
        raise GNMError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}.")
    return table[_key(name)]()
