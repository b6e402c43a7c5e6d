"""Milliseconds per IDC optimisation step, with a breakdown, for the plain and the fast path.

Paper scale (`--scale paper`): N=151 real 64x64 LR patches, n=16 synthetic (ceil(0.1 N)),
SwinIR-light x4 extractor (randomly initialised: timing does not depend on the weights), RLFF with
k=7 and 256 sampled channels, p=4, 1024 frequencies, 16 groups. Reduced scale (`--scale cpu`):
N=40 16x16 patches (n=4), 64 channels, 256 frequencies, 16 groups, same extractor.

The step is timed in its heaviest regime: every synthetic local patch grouped and paired. The
plain path loops over the groups in Python; the fast path uses the vectorised group/pair losses
(and optionally a compiled extractor, TF32, the extractor's attention through SDPA). Both are checked to give equal losses.

One JSON line per path goes to `--jsonl` as it is measured (bench/partlog.py); `--compile` times
the compiled path in a child process killed at `--compile-seconds`.

    python bench/condense_step.py --scale cpu --fused-attention --json
    python bench/condense_step.py --scale cpu --extractor swinir_toy --jsonl lines.jsonl
    python bench/condense_step.py --scale paper --device cuda --tf32 --fused-attention --json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.partlog import PartLog, run_in_child  # noqa: E402
from idc.archs import set_fused_attention  # noqa: E402
from idc.condense.config import CondenseConfig  # noqa: E402
from idc.condense.features import LocalFeatures  # noqa: E402
from idc.condense.grouping import ProgressiveAssigner, kmeans, patch_descriptors  # noqa: E402
from idc.condense.losses import (  # noqa: E402
    instance_and_group_losses,
    instance_and_group_losses_looped,
    normalise_samples,
    pair_loss,
    pair_loss_looped,
    real_cf_stats,
    sample_frequencies,
)
from idc.device import resolve_device  # noqa: E402
from idc.runloop import derive_seed  # noqa: E402

SCALES = {
    "paper": dict(n_real=151, size=64, channels=256, num_freqs=1024, groups=16, kernel=7, patch=4),
    "cpu": dict(n_real=40, size=16, channels=64, num_freqs=256, groups=16, kernel=7, patch=4),
}


# The product's SwinIR at a toy width and depth: a smoke run on a CPU times the same code paths.
SWINIR_TOY = dict(upscale=4, in_chans=3, img_range=1.0, depths=[2], embed_dim=16, num_heads=[2], window_size=8,
                  mlp_ratio=2.0, upsampler="pixelshuffledirect", resi_connection="1conv")


def build_extractor(name: str, size: int) -> torch.nn.Module:
    from idc.archs import build_model

    torch.manual_seed(0)
    if name == "swinir_toy":
        return build_model("swinir", img_size=size, **SWINIR_TOY)
    return build_model("swinir_light_x4", img_size=size)


class Bench:
    def __init__(self, scale: str, device: torch.device, extractor: str, seed: int = 0) -> None:
        s = SCALES[scale]
        self.device = device
        # ceil_per_image: n = ceil(0.1 N), the larger of the two counts an image of N patches can get
        # under the equal budget (floor or ceil of r N), as the timings in docs/performance.md use.
        self.cfg = CondenseConfig.from_dict(dict(channels=s["channels"], num_freqs=s["num_freqs"], groups=s["groups"],
                                                 kernel=s["kernel"], patch=s["patch"], warmup=0, assign_times=1,
                                                 budget="ceil_per_image"))
        g = torch.Generator().manual_seed(seed)
        self.real = torch.rand(s["n_real"], 3, s["size"], s["size"], generator=g).to(device)
        self.n_syn = self.cfg.n_synthetic(s["n_real"])
        self.ext = build_extractor(extractor, s["size"]).to(device).eval()
        for p in self.ext.parameters():
            p.requires_grad_(False)
        cfg = self.cfg
        with torch.no_grad():
            f_real = torch.cat([self.ext.features(self.real[i:i + 32]) for i in range(0, len(self.real), 32)])
        self.local = LocalFeatures.build(cfg, f_real.shape[1], seed=derive_seed(seed, "filters"), device=device)
        self.local.fit_real(f_real)
        with torch.no_grad():
            self.real_samples = normalise_samples(self.local.samples(f_real, real=True))
        self.per_patch, self.dim = self.real_samples.shape[1:]
        self.real_flat = self.real_samples.reshape(-1, self.dim)
        desc, self.real_patch = patch_descriptors(f_real, cfg.patch)
        cent, labels = kmeans(desc, cfg.groups, generator=torch.Generator(device=device).manual_seed(1))
        self.real_seg = labels.repeat_interleave(self.per_patch)
        self.syn = torch.nn.Parameter(torch.rand(self.n_syn, 3, s["size"], s["size"], generator=g).to(device))
        n_syn_patches = self.real_samples.shape[0] // s["n_real"] * self.n_syn
        self.scale_p = torch.nn.Parameter(torch.zeros(n_syn_patches, self.dim, device=device))
        self.shift_p = torch.nn.Parameter(torch.zeros(n_syn_patches, self.dim, device=device))
        self.opt = torch.optim.Adam([self.syn, self.scale_p, self.shift_p], lr=cfg.lr)
        # group everything, then pair everything (two assignment events)
        self.assigner = ProgressiveAssigner(groups=cfg.groups, assign_times=1, use_pair=True, order="nearest",
                                            pairing="hungarian", real_labels=labels, centroids=cent,
                                            n_syn=n_syn_patches)
        with torch.no_grad():
            sd, sp = patch_descriptors(self.ext.features(self.syn), cfg.patch)
        self.assigner.run_event(sd, sp, self.real_patch)
        self.assigner.run_event(sd, sp, self.real_patch)
        self.paired = (self.assigner.syn_pair >= 0).nonzero().flatten()
        self.syn_seg = self.assigner.syn_group.repeat_interleave(self.per_patch)
        self.freq_gen = torch.Generator(device=device).manual_seed(2)
        self.features = self.ext.features
        self.freq_reuse, self.calls, self.cached = 1, 0, None  # freq_resample_every of the fast path
        self.info = {"n_real": s["n_real"], "n_synthetic": self.n_syn, "size": s["size"],
                     "real_samples": int(self.real_flat.shape[0]), "synthetic_samples": n_syn_patches * self.per_patch,
                     "dim": int(self.dim), "num_freqs": cfg.num_freqs, "groups": cfg.groups,
                     "extractor": type(self.ext).__name__,
                     "extractor_params": sum(p.numel() for p in self.ext.parameters())}

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def losses(self, fast: bool, t: torch.Tensor | None = None):
        cfg = self.cfg
        reuse = t is None and fast and self.freq_reuse > 1
        if reuse and self.cached is not None and self.calls % self.freq_reuse != 0:
            t, stats = self.cached  # frequencies kept: the real side's statistics too
        else:
            if t is None:
                t = sample_frequencies(cfg.num_freqs, self.dim, std=1.0, generator=self.freq_gen, device=self.device)
            stats = real_cf_stats(self.real_flat, self.real_seg, cfg.groups, t, cfg.real_chunk) if fast else None
            if reuse:
                self.cached = (t, stats)
        self.calls += 1
        syn = normalise_samples(self.local.samples(self.features(self.syn), real=False))
        return self.losses_of_samples(syn, t, stats, fast)

    def losses_of_samples(self, syn: torch.Tensor, t: torch.Tensor, stats, fast: bool):
        """The three losses of normalised synthetic samples; `stats`: the real side (fast path)."""
        cfg = self.cfg
        flat = syn.reshape(-1, self.dim)
        if fast:
            li, lg = instance_and_group_losses(flat, self.syn_seg, stats, t, cfg.groups, cfg.alpha, cfg.beta)
            pl = pair_loss
        else:
            li, lg = instance_and_group_losses_looped(flat, self.syn_seg, self.real_flat, self.real_seg, t,
                                                      cfg.groups, cfg.alpha, cfg.beta)
            pl = pair_loss_looped
        p = self.paired
        lp, reg = pl(self.real_samples[self.assigner.syn_pair[p]], syn[p], self.assigner.syn_group[p], cfg.groups,
                     self.scale_p[p], self.shift_p[p])
        total = cfg.w_ins * li + cfg.w_group * lg + cfg.w_pair * (lp + cfg.deform_l2 * reg)
        return total, {"loss_ins": li, "loss_group": lg, "loss_pair": lp}

    def step(self, fast: bool) -> None:
        total, _ = self.losses(fast)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        with torch.no_grad():
            self.syn.clamp_(0, 1)

    def time_steps(self, fast: bool, steps: int, warm: int, mean: bool = False) -> float:
        """GPU: mean over `steps` queued steps (one sync at the end). CPU: the fastest step (the
        least disturbed by other processes on a shared machine), or the mean where steps differ."""
        for _ in range(warm):
            self.step(fast)
        self.sync()
        if self.device.type == "cuda":
            t0 = time.perf_counter()
            for _ in range(steps):
                self.step(fast)
            self.sync()
            return (time.perf_counter() - t0) * 1000 / steps
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            self.step(fast)
            times.append((time.perf_counter() - t0) * 1000)
        return float(sum(times) / len(times) if mean else min(times))

    def breakdown(self, fast: bool, reps: int) -> dict[str, float]:
        """Per-section ms with a synchronisation after each section (adds a little overhead)."""
        cfg = self.cfg
        acc: dict[str, float] = {}

        def tick(name: str, t0: float) -> float:
            self.sync()
            now = time.perf_counter()
            acc[name] = acc.get(name, 0.0) + (now - t0) * 1000 / reps
            return now

        for _ in range(reps):
            self.sync()
            t0 = time.perf_counter()
            t = sample_frequencies(cfg.num_freqs, self.dim, std=1.0, generator=self.freq_gen, device=self.device)
            f = self.features(self.syn)
            t0 = tick("extractor_fwd", t0)
            syn = normalise_samples(self.local.samples(f, real=False))
            flat = syn.reshape(-1, self.dim)
            t0 = tick("rlff_unfold", t0)
            if fast:
                stats = real_cf_stats(self.real_flat, self.real_seg, cfg.groups, t, cfg.real_chunk)
                t0 = tick("real_cf_stats", t0)
                li, lg = instance_and_group_losses(flat, self.syn_seg, stats, t, cfg.groups, cfg.alpha, cfg.beta)
                t0 = tick("loss_ins_group", t0)
            else:  # the real side is recomputed inside the per-group loop
                li, lg = instance_and_group_losses_looped(flat, self.syn_seg, self.real_flat, self.real_seg, t,
                                                          cfg.groups, cfg.alpha, cfg.beta)
                t0 = tick("loss_ins_group", t0)
            p = self.paired
            fn = pair_loss if fast else pair_loss_looped
            lp, reg = fn(self.real_samples[self.assigner.syn_pair[p]], syn[p], self.assigner.syn_group[p], cfg.groups,
                         self.scale_p[p], self.shift_p[p])
            t0 = tick("loss_pair", t0)
            total = cfg.w_ins * li + cfg.w_group * lg + cfg.w_pair * (lp + cfg.deform_l2 * reg)
            self.opt.zero_grad(set_to_none=True)
            total.backward()
            t0 = tick("backward_all", t0)
            self.opt.step()
            with torch.no_grad():
                self.syn.clamp_(0, 1)
            tick("optimiser", t0)
        # the extractor alone, forward + backward to the input (its share of a step)
        self.sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            x = self.syn.detach().clone().requires_grad_(True)
            self.features(x).square().mean().backward()
        self.sync()
        acc["extractor_fwd_bwd_alone"] = (time.perf_counter() - t0) * 1000 / reps
        return {k: round(v, 3) for k, v in acc.items()}

    def time_losses(self, fast: bool, reps: int) -> float:
        """Fastest of `reps` runs (ms) of the three losses alone (forward + backward to the synthetic samples), the
        part the vectorisation changes; the extractor is left out."""
        cfg = self.cfg
        with torch.no_grad():
            base = normalise_samples(self.local.samples(self.features(self.syn), real=False))
        times = []
        for _ in range(reps + 1):
            syn = base.clone().requires_grad_(True)
            self.sync()
            t0 = time.perf_counter()
            t = sample_frequencies(cfg.num_freqs, self.dim, std=1.0, generator=self.freq_gen, device=self.device)
            stats = real_cf_stats(self.real_flat, self.real_seg, cfg.groups, t, cfg.real_chunk) if fast else None
            self.losses_of_samples(syn, t, stats, fast)[0].backward()
            self.sync()
            times.append((time.perf_counter() - t0) * 1000)
        return round(float(min(times[1:])), 3)

    def check_equal(self) -> dict[str, float]:
        gen = torch.Generator(self.device).manual_seed(9)
        t = sample_frequencies(self.cfg.num_freqs, self.dim, std=1.0, generator=gen, device=self.device)
        with torch.no_grad():
            _, a = self.losses(True, t)
            _, b = self.losses(False, t)
        return {k: float((a[k] - b[k]).abs() / (b[k].abs() + 1e-12)) for k in a}


def _per_step_figures(rec: dict) -> dict:
    rec["steps_per_second"] = round(1000 / rec["ms_per_step"], 2)
    rec["minutes_per_20k_steps"] = round(rec["ms_per_step"] * 20000 / 60000, 1)
    return rec


def compiled_path(scale: str, device: str, extractor: str, steps: int, warm: int) -> dict:
    """The fast path with a torch.compile'd extractor, timed in a fresh process (run_in_child: the
    parent kills it at its deadline, however long compiling takes)."""
    bench = Bench(scale, torch.device(device), extractor)
    bench.features = torch.compile(bench.ext.features)
    t0 = time.perf_counter()
    bench.step(True)
    bench.sync()
    compile_s = time.perf_counter() - t0
    return {"ms_per_step": round(bench.time_steps(True, steps, warm), 3), "compile_seconds": round(compile_s, 1),
            "breakdown_ms": bench.breakdown(True, max(1, steps // 2))}


def _tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--extractor", choices=["swinir_light", "swinir_toy"], default="swinir_light")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 20 GPU / 3 CPU)")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--compile", action="store_true",
                    help="also time the fast path with torch.compile (in a child process, see --compile-seconds)")
    ap.add_argument("--compile-seconds", type=float, default=300,
                    help="deadline of the compiled path's child process (compiling included)")
    ap.add_argument("--tf32", action="store_true", help="also time the fast path with TF32 (CUDA)")
    ap.add_argument("--freq-reuse", type=int, default=0, metavar="K",
                    help="also time the fast path drawing frequencies every K steps (freq_resample_every=K)")
    ap.add_argument("--fused-attention", action="store_true",
                    help="also time the fast path with the extractor's window attention through SDPA")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--jsonl", type=Path, help="one JSON line per path, written as it is measured")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    steps = args.steps or (20 if gpu else 3)
    warm = args.warmup if args.warmup is not None else (3 if gpu else 1)
    plan = ["check_fast_vs_plain"] + ([] if args.skip_plain else ["plain"]) + ["fast"]
    plan += ["fast_tf32"] if args.tf32 else []
    plan += [f"fast_freq_reuse{args.freq_reuse}"] if args.freq_reuse > 1 else []
    plan += ["fast_fused_attention"] if args.fused_attention else []
    plan += ["fast_fused_attention_tf32"] if args.fused_attention and args.tf32 else []
    plan += ["fast_compiled"] if args.compile else []
    cpu_name = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    head = {"scale": args.scale, "device": torch.cuda.get_device_name(device) if gpu else cpu_name,
            "torch": torch.__version__}
    log = PartLog(args.jsonl, plan=plan, **head)
    bench = Bench(args.scale, device, args.extractor)
    out = {**head, **bench.info, "timed_steps": steps, "paths": {}}
    log.write({"info": {**bench.info, "timed_steps": steps}})
    no_tf32 = "TF32 is a CUDA feature: nothing to time on this device"
    with log.path("check_fast_vs_plain") as rec:
        rec["loss_relative_difference"] = out["loss_relative_difference_fast_vs_plain"] = bench.check_equal()
    for name, fast in [(p, p == "fast") for p in plan if p in ("plain", "fast")]:
        with log.path(name) as rec:
            rec.update(_per_step_figures({"ms_per_step": round(bench.time_steps(fast, steps, warm), 3),
                                          "losses_only_ms": bench.time_losses(fast, max(5, steps)),
                                          "breakdown_ms": bench.breakdown(fast, max(1, steps // 2))}))
            out["paths"][name] = rec
    if args.tf32 and not gpu:
        log.skip("fast_tf32", no_tf32)
    elif args.tf32:
        with log.path("fast_tf32") as rec:
            _tf32(True)
            try:
                rec.update(_per_step_figures({"ms_per_step": round(bench.time_steps(True, steps, warm), 3),
                                              "breakdown_ms": bench.breakdown(True, max(1, steps // 2))}))
            finally:
                _tf32(False)
            out["paths"]["fast_tf32"] = rec
    if args.freq_reuse > 1:
        with log.path(f"fast_freq_reuse{args.freq_reuse}") as rec:
            # Cached steps are cheaper than drawing ones: means over whole periods, for both paths.
            n = 2 * args.freq_reuse
            fast_mean = bench.time_steps(True, n, warm, mean=True)
            bench.freq_reuse, bench.calls, bench.cached = args.freq_reuse, 0, None
            try:
                rec.update(_per_step_figures({"ms_per_step": round(bench.time_steps(True, n, warm, mean=True), 3),
                                              "fast_mean_ms_same_run": round(fast_mean, 3)}))
            finally:
                bench.freq_reuse = 1
            out["paths"][f"fast_freq_reuse{args.freq_reuse}"] = rec
    if args.fused_attention:
        with log.path("fast_fused_attention") as rec:
            gen = torch.Generator(device).manual_seed(9)
            t = sample_frequencies(bench.cfg.num_freqs, bench.dim, std=1.0, generator=gen, device=device)
            with torch.no_grad():
                _, explicit = bench.losses(True, t)
                set_fused_attention(bench.ext, True)
                _, fused = bench.losses(True, t)
            diff = {k: float((fused[k] - explicit[k]).abs() / (explicit[k].abs() + 1e-12)) for k in fused}
            out["loss_relative_difference_fused_vs_explicit_attention"] = diff
            rec["loss_relative_difference_vs_explicit_attention"] = diff
            rec.update(_per_step_figures({"ms_per_step": round(bench.time_steps(True, steps, warm), 3),
                                          "breakdown_ms": bench.breakdown(True, max(1, steps // 2))}))
            out["paths"]["fast_fused_attention"] = rec
        if args.tf32 and not gpu:
            log.skip("fast_fused_attention_tf32", no_tf32)
        elif args.tf32:
            with log.path("fast_fused_attention_tf32") as rec:
                _tf32(True)
                try:
                    rec.update(_per_step_figures({"ms_per_step": round(bench.time_steps(True, steps, warm), 3),
                                                  "breakdown_ms": bench.breakdown(True, max(1, steps // 2))}))
                finally:
                    _tf32(False)
                out["paths"]["fast_fused_attention_tf32"] = rec
        set_fused_attention(bench.ext, False)
    if args.compile:
        with log.path("fast_compiled") as rec:
            status, value = run_in_child(compiled_path, dict(scale=args.scale, device=str(device),
                                                             extractor=args.extractor, steps=steps, warm=warm),
                                         args.compile_seconds)
            if status == "ok":
                rec.update(_per_step_figures(value))
                out["paths"]["fast_compiled"] = rec
            else:
                rec.update({"status": status, "reason": value})
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    tol = 1e-3
    bad = {k: v for k, v in out.get("loss_relative_difference_fast_vs_plain", {}).items() if v > tol}
    bad.update({f"{k} (fused attention)": v for k, v in
                out.get("loss_relative_difference_fused_vs_explicit_attention", {}).items() if v > tol})
    if bad:
        print(f"fast and plain paths differ beyond {tol}: {bad}", file=sys.stderr)
        return 1
    return log.exit_code()


if __name__ == "__main__":
    sys.exit(main())
