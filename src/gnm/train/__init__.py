"""Training: the loop (:mod:`gnm.train.trainer`), checkpoints, export and loading
(:mod:`gnm.train.checkpoint`), the step-indexed sampler, DDP support and the trainer's config
(:mod:`gnm.train.config`). Import the module you need; this package imports nothing itself, so
that ``gnm.config`` can import :mod:`gnm.train.config` without pulling in the trainer."""
