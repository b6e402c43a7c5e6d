"""idc.device.resolve_device: one reading of the `device` setting for every stage."""

from __future__ import annotations

import pytest
import torch

from idc.device import resolve_device


def test_auto_and_none_pick_cuda_only_when_present(monkeypatch):
    for present, expected in ((False, "cpu"), (True, "cuda")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda present=present: present)
        assert resolve_device("auto") == resolve_device(None) == torch.device(expected)
    assert resolve_device() == torch.device("cuda")


def test_explicit_devices_pass_through():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_unusable_devices_are_refused_up_front(monkeypatch):
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="has 1 CUDA device"):
        resolve_device("cuda:3")
