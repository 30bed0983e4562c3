"""Model configuration (owned by the model code). See gnm/config.py for how configs combine.

Defaults are the paper's MNIST-4 model (SPEC §1, reference numbers where the paper is silent);
:mod:`gnm.presets` holds the named variants (MNIST, Arrow Room, CPU-scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gnm.schedule import Schedule


@dataclass
class ObjectMapConfig:
    """What GNM and SPACE share: the image encoder, the latent structure map z_s (structuring
    network, glimpse decoder, compositing), the background, the likelihood, the fixed auxiliary
    priors and their curriculum. :class:`GNMConfig` adds StructDRAW's global latent;
    ``gnm.models.space.SPACEConfig`` uses this as it is."""

    # --- structure (image size and channels are data.size and data.channels) ---------------
    grid: int = 4  # G: the latent structure map has G×G cells

    # --- image encoder (Table 6): conv + LN + CELU, data.size -> G×G map f_x -----------------
    enc_filters: tuple[int, ...] = (16, 16, 32, 32, 64, 64, 64, 64, 64)  # out channels per conv
    enc_kernels: tuple[int, ...] = (4, 3, 4, 3, 4, 3, 4, 3, 4)  # kernel sizes
    enc_strides: tuple[int, ...] = (2, 1, 2, 1, 2, 1, 2, 1, 2)  # strides (prod = data.size / G)

    # --- structuring network q(z_s|f_x) = p(z_s|f) (shared, Table 9) ---------------------------
    struct_hidden: tuple[int, ...] = (64, 64)  # 1×1 conv + LN + CELU widths before the heads
    z_what_dim: int = 20  # appearance latent per cell (20 MNIST, 64 Arrow)
    pres_logit_scale: float = 8.8  # z_pres logit = scale · tanh(·)

    # --- glimpse decoder (Table 7): z_what -> appearance (and mask) -----------------------------
    glimpse_filters: tuple[int, ...] = (64, 64, 32, 16, 8)  # hidden sub-pixel conv widths
    glimpse_kernels: tuple[int, ...] = (1, 1, 1, 1, 3, 3)  # kernels, one per layer incl. output
    glimpse_upscales: tuple[int, ...] = (4, 2, 2, 2, 1, 1)  # upscales; product = glimpse side px
    glimpse_mask: bool = False  # decode a mask channel m (False: m = 1 in the box, MNIST ref)
    render: str = "window"  # compositing: window (fast) | separable | grid_sample (test oracles)

    # --- background z_b (Table 8, Table 9) ---------------------------------------------------
    background: bool = False  # model a background (False: black, no z_b; MNIST)
    z_bg_dim: int = 10  # background latent dims
    bg_enc_hidden: tuple[int, ...] = (512, 256)  # q(z_b|x) MLP hidden sizes on flatten(f_x)
    bg_filters: tuple[int, ...] = (128, 64, 32, 16, 8)  # hidden sub-pixel conv widths
    bg_kernels: tuple[int, ...] = (1, 1, 1, 1, 1, 3)  # kernels, one per layer incl. output
    bg_upscales: tuple[int, ...] = (4, 2, 4, 2, 2, 1)  # upscales; product = data.size

    # --- likelihood and fixed auxiliary priors (App. C) -------------------------------------------
    sigma: float = 0.2  # std of the Gaussian pixel likelihood
    where_prior_mean: tuple[float, ...] = (-1.6, 0.0, 0.0, 0.0)  # aux N on raw z_where
    where_prior_std: tuple[float, ...] = (0.1, 0.3, 1.0, 1.0)  # (scale, ratio, shift x, shift y)
    std_floor: float = 1e-4  # added to every softplus std (keeps KLs finite)

    # --- curriculum: every weight a pure function of the training step ------------------------
    tau: Schedule = field(default_factory=lambda: Schedule(1000, 20000, 1.0, 0.5))  # z_pres τ
    rho: Schedule = field(default_factory=lambda: Schedule(0, 4000, 0.1, 0.001))  # aux Ber(ρ)
    beta_b: Schedule = field(  # weight of the aux KL(q(z_b|x) || N(0,1)) (background only)
        default_factory=lambda: Schedule(0, 50_000, 50.0, 1.0))
    aux_where_weight: Schedule = field(  # weight of the aux where KL (Arrow: 10 -> 1 over 500)
        default_factory=lambda: Schedule.constant(1.0))
    alpha_force: Schedule = field(  # the reference's bg-alpha curriculum (Arrow: 0.9 for 500
        # steps): the image's foreground alpha M is this value at every pixel, so the objects
        # must draw the whole scene (x = x_fg + (1 − a)·x_b) and z_pres ≤ 0.99; 0 = off
        default_factory=lambda: Schedule.constant(0.0))

    @property
    def num_cells(self) -> int:
        """K = G²: number of cells / object slots."""
        return self.grid * self.grid


@dataclass
class GNMConfig(ObjectMapConfig):
    """GNM's config: architecture, loss and curriculum (all it needs to be built and trained):
    the fields of :class:`ObjectMapConfig` plus StructDRAW's global latent z_g. Other models
    have their own config dataclass (see gnm.models.registry)."""

    name: str = "gnm"  # registry name of the model (gnm.models.registry)

    # --- StructDRAW global latent z_g (Algorithm 1) ------------------------------------------
    global_prior: str = "structdraw"  # 'structdraw' (learned autoregressive) | 'gaussian' N(0,I)
    interaction_mlp: bool = True  # MLP over all cells for µ,σ (False: GNM-NoMLP, per-cell CNN)
    draw_steps: int = 4  # L: autoregressive drawing steps (GNM-4 / GNM-8)
    z_step_dim: int = 32  # z_ℓ dims per step (per cell when interaction_mlp=False)
    draw_hidden: int = 64  # channels of the encoder and decoder ConvLSTM states
    draw_kernel: int = 1  # ConvLSTM kernel size (reference: 1)
    interaction_hidden: tuple[int, ...] = (512, 512)  # MLP_int hidden sizes (output 2·z_step_dim)
    nomlp_hidden: int = 128  # hidden channels of the per-cell CNN that replaces MLP_int (NoMLP)
    gdec_hidden: tuple[int, ...] = (512, 512)  # MLP_gdec hidden sizes (output draw_input·G²)
    draw_input: int = 64  # channels of d_ℓ = MLP_gdec(z_ℓ), the decoder ConvLSTM's input
    bg_prior_hidden: tuple[int, ...] = (128, 64)  # p(z_b|z_g) MLP hidden sizes on z_g
    beta_g: float = 1.0  # GNM-β: constant multiplier on the global KL (times the warm-up)
    beta_g_warmup: Schedule = field(  # warm-up factor on the global KL
        default_factory=lambda: Schedule(0, 100_000, 0.0, 1.0))

    @property
    def z_global_dim(self) -> int:
        """Dimension of z_g = cat(z_1..z_L)."""
        per_step = self.z_step_dim if self.interaction_mlp else self.z_step_dim * self.num_cells
        return self.draw_steps * per_step


#: The name this config had when GNM was the only model (kept for scripts that import it).
ModelConfig = GNMConfig

#: Allowed ranges of GNMConfig fields (lists: every entry); checked by gnm.config.check_field
#: when a value is set and before a model is built. Fields not named here take any value of
#: their type.
LIMITS = {
    **dict.fromkeys(("grid", "enc_filters", "enc_kernels", "enc_strides",
                     "draw_steps", "z_step_dim", "draw_hidden", "draw_kernel",
                     "interaction_hidden", "nomlp_hidden", "gdec_hidden", "draw_input",
                     "struct_hidden", "z_what_dim", "glimpse_filters", "glimpse_kernels",
                     "glimpse_upscales", "z_bg_dim", "bg_enc_hidden", "bg_prior_hidden",
                     "bg_filters", "bg_kernels", "bg_upscales"), ">= 1"),
    "pres_logit_scale": "> 0", "sigma": "> 0", "where_prior_std": "> 0", "beta_g": ">= 0",
    "std_floor": ">= 0",
}
