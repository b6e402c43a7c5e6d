"""Training and testing of SR networks.

- `idc.sr.train.train_sr(cfg, *, store_path, out_dir, ...)`: train the `idc.archs` model of a
  `TrainConfig` on a patch store (checkpointed, resumable).
- `idc.sr.test.test_sr(...)`: per-image PSNR/SSIM of a saved model on test sets; `upscale_image`.
- `idc.sr.metrics.calculate_psnr/calculate_ssim`: BasicSR conventions on RGB images.
- `idc.sr.data.PatchPairDataset`: aligned random crops with flips/rotations, resumable order.
"""
