"""Data-stage throughput: cropping vs plain PNG decoding, and random patch reads from the store.

Usage: ``python bench/bench_data.py [--images DIR] [--hr-size 256] [--step 128] [--reads 2000]``

Uses ../shared/data/BSD100/HR when present, else builds the demo images. Prints:
* PNG decode time of all images (the floor any cropper must pay) and the cropping time of
  ``crop_images_to_store`` on the same files with 1 and 2 workers (ratio to decoding);
* random single-patch and batch-of-16 reads of 256x256 HR patches from the store (patches/s on
  one core), for LZF (the store's choice) and gzip for comparison.
Reads come from the OS page cache after the first touch: this measures decompression and HDF5
overhead, not the disk.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from idc.data.crop import crop_images_to_store  # noqa: E402
from idc.data.images import list_images, read_image  # noqa: E402
from idc.data.store import PatchStore  # noqa: E402


def _images_dir(arg: str | None, tmp: Path) -> Path:
    if arg:
        return Path(arg)
    bsd = ROOT.parent / "shared" / "data" / "BSD100" / "HR"
    if bsd.is_dir():
        return bsd
    from idc.data.demo import build_demo_images

    build_demo_images(tmp / "demo", max_side=512)
    return tmp / "demo" / "train" / "HR"


def _time(fn, repeat: int = 3) -> float:  # best of `repeat` (the machine is shared)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _random_reads(store: PatchStore, n_reads: int, batch: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(store), size=(n_reads // batch, batch))
    store.read_hr(idx[0])  # open the handle outside the timing
    t0 = time.perf_counter()
    for row in idx:
        store.read_hr(row)
    return idx.size / (time.perf_counter() - t0)


def _gzip_copy(src: Path, dst: Path, level: int) -> PatchStore:
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for name in f:
            ds = f[name]
            if name in ("lr", "hr"):
                g.create_dataset(
                    name,
                    data=ds[...],
                    chunks=ds.chunks,
                    compression="gzip",
                    compression_opts=level,
                    maxshape=ds.maxshape,
                )
            else:
                f.copy(name, g)
        for k, v in f.attrs.items():
            g.attrs[k] = v
        g.attrs["compression"] = f"gzip-{level}"
    return PatchStore(dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=None)
    ap.add_argument("--hr-size", type=int, default=256)
    ap.add_argument("--step", type=int, default=128)
    ap.add_argument("--reads", type=int, default=2000)
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        folder = _images_dir(args.images, tmp)
        files = list_images(folder)
        pixels = sum(
            int(np.prod(read_image(f).shape[:2])) for f in files
        )  # also warms the page cache
        print(
            f"images: {folder} ({len(files)} files, {pixels / 1e6:.1f} MPixel); cpus: {os.cpu_count()}, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        t_decode = _time(lambda: [read_image(f) for f in files])
        print(
            f"PNG decode (1 core):           {t_decode:7.2f} s  {len(files) / t_decode:7.1f} img/s  {pixels / 1e6 / t_decode:6.1f} MPix/s"
        )
        store_path = tmp / "bench.h5"
        for workers in (1, 2):
            t = _time(
                lambda: crop_images_to_store(
                    folder,
                    store_path,
                    hr_size=args.hr_size,
                    step=args.step,
                    workers=workers,
                    source="bench",
                ),
                repeat=3,
            )
            n = len(PatchStore(store_path))
            print(
                f"crop+imresize+store ({workers} wk):  {t:7.2f} s  {len(files) / t:7.1f} img/s  "
                f"{n / t:7.1f} patches/s  ratio to decode {t / t_decode:5.2f}x"
            )
        store = PatchStore(store_path)
        raw = len(store) * (np.prod(store.hr_shape) + np.prod(store.lr_shape))
        print(
            f"store: {len(store)} pairs, HR {store.hr_shape}, {store_path.stat().st_size / raw * 100:.0f} % of raw bytes (lzf)"
        )
        for label, st in (
            ("lzf", store),
            ("gzip-1", _gzip_copy(store_path, tmp / "g1.h5", 1)),
            ("gzip-4", _gzip_copy(store_path, tmp / "g4.h5", 4)),
        ):
            size = st.path.stat().st_size / raw * 100
            single = _random_reads(st, args.reads, 1)
            batch = _random_reads(st, args.reads, 16)
            print(
                f"random HR reads {label:7s} ({size:3.0f} % size): {single:7.0f} patches/s single, "
                f"{batch:7.0f} patches/s in batches of 16 (1 core)"
            )


if __name__ == "__main__":
    main()
