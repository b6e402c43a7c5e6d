"""Detection of mamba_ssm's compiled selective-scan kernel across the package's layouts, simulated
with stand-in packages on sys.path (no CUDA needed): the kernel is used only when the compiled
extension itself is there, otherwise the PyTorch scan runs and one log line says why."""

from __future__ import annotations

import logging
import sys
import textwrap

import pytest
import torch

import idc.archs.selective_scan as scan

MODULES = ("mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.selective_scan_interface", "selective_scan_cuda")

# Older mamba-ssm: the interface imports the extension unconditionally (fails without it).
EAGER_INTERFACE = """
import selective_scan_cuda

def selective_scan_fn(*args, **kwargs):
    return ("kernel", selective_scan_cuda.fwd(*args))
"""
# Recent mamba-ssm: the extension is optional; the interface imports, the call fails.
OPTIONAL_INTERFACE = """
try:
    import selective_scan_cuda
except ImportError:
    selective_scan_cuda = None

def selective_scan_fn(*args, **kwargs):
    if selective_scan_cuda is None:
        raise RuntimeError("selective_scan_cuda is not available")
    return ("kernel", selective_scan_cuda.fwd(*args))
"""
EXTENSION = "def fwd(*args):\n    return len(args)\n"


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """Build a stand-in mamba_ssm under tmp_path: `layout(interface_source, with_extension)`."""
    for name in MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(scan, "_CUDA_KERNEL", None)
    monkeypatch.setattr(scan, "_CUDA_KERNEL_TRIED", False)
    monkeypatch.setattr(scan, "_CUDA_KERNEL_MISSING", None)
    # A real mamba_ssm or extension on this machine must not leak into the simulation.
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + [p for p in sys.path if "site-packages" not in p])

    def build(interface: str | None, with_extension: bool) -> None:
        if interface is not None:
            ops = tmp_path / "mamba_ssm" / "ops"
            ops.mkdir(parents=True)
            (tmp_path / "mamba_ssm" / "__init__.py").write_text("")
            (ops / "__init__.py").write_text("")
            (ops / "selective_scan_interface.py").write_text(textwrap.dedent(interface))
        if with_extension:
            (tmp_path / "selective_scan_cuda.py").write_text(EXTENSION)

    yield build
    for name in MODULES:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("interface", [EAGER_INTERFACE, OPTIONAL_INTERFACE], ids=["eager", "optional"])
def test_kernel_is_used_when_the_compiled_extension_is_present(layout, interface, caplog):
    layout(interface, with_extension=True)
    with caplog.at_level(logging.INFO, logger=scan.__name__):
        kernel = scan.cuda_kernel()
    assert kernel is not None and kernel(1, 2, 3) == ("kernel", 3)
    assert not caplog.records


def test_optional_layout_without_extension_falls_back_with_one_log_line(layout, caplog):
    layout(OPTIONAL_INTERFACE, with_extension=False)
    # The trap this guards against: the interface imports fine, only the call would fail.
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    with pytest.raises(RuntimeError):
        selective_scan_fn(1)
    with caplog.at_level(logging.INFO, logger=scan.__name__):
        assert scan.cuda_kernel() is None
        assert scan.cuda_kernel() is None  # asked again: no second line
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "without its compiled extension selective_scan_cuda" in lines[0]
    assert scan.MAMBA_INSTALL in lines[0] and "PyTorch scan" in lines[0]
    with pytest.raises(RuntimeError, match="no-build-isolation"):
        scan.selective_scan(*_inputs(), impl="cuda")


def test_eager_layout_without_extension_and_no_package_fall_back(layout, caplog):
    layout(EAGER_INTERFACE, with_extension=False)
    with caplog.at_level(logging.INFO, logger=scan.__name__):
        assert scan.cuda_kernel() is None
    assert "without its compiled extension" in caplog.records[-1].getMessage()


def test_no_mamba_ssm_at_all(layout, caplog):
    layout(None, with_extension=False)
    with caplog.at_level(logging.INFO, logger=scan.__name__):
        assert scan.cuda_kernel() is None
    assert "mamba_ssm is not installed" in caplog.records[-1].getMessage()


def test_an_extension_without_its_kernel_entry_point_is_not_trusted(layout, tmp_path):
    layout(OPTIONAL_INTERFACE, with_extension=False)
    (tmp_path / "selective_scan_cuda.py").write_text("VERSION = 1\n")
    assert scan.cuda_kernel() is None
    assert "no fwd kernel" in scan._CUDA_KERNEL_MISSING


def test_cpu_tensors_use_the_pytorch_scan_whatever_is_installed(layout):
    layout(OPTIONAL_INTERFACE, with_extension=True)
    args = _inputs()
    out = scan.selective_scan(*args)  # auto on CPU: never the kernel
    assert torch.allclose(out, scan.selective_scan_sequential(*args), atol=1e-5)


def _inputs():
    g = torch.Generator().manual_seed(0)
    b, d, n, length = 1, 2, 3, 5
    u = torch.randn(b, d, length, generator=g)
    delta = torch.rand(b, d, length, generator=g)
    A = -torch.rand(d, n, generator=g)
    B = torch.randn(b, n, length, generator=g)
    C = torch.randn(b, n, length, generator=g)
    return u, delta, A, B, C
