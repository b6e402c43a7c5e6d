"""SR networks (EDSR, SwinIR, MambaIRv2) with the official state-dict layouts, and a selective scan.

Public API:
- `build_model(name, **kwargs)`: architecture (`edsr`, `swinir`, `mambairv2_light`, `mambairv2`)
  or preset name (`MODEL_PRESETS`); every model has `features(x)` (input of the up-sampler).
- `save_model(path, model, name, kwargs)` / `load_model(path)`: safetensors with the constructor
  arguments in the metadata.
- `load_official_weights(model, path_or_dict)`: released checkpoints and fixtures, no pickle code.
- `set_fused_attention(model)`: window attention through `scaled_dot_product_attention`;
  `set_window_attention(model, fused=..., head_dim_multiple=...)`: that and the head-dim padding.
"""

from idc.archs.attention import set_fused_attention, set_window_attention
from idc.archs.io import (
    import_official_weights,
    load_model,
    load_official_weights,
    read_model_metadata,
    save_model,
)
from idc.archs.registry import ARCHITECTURES, MODEL_PRESETS, build_model, resolve


def deterministic_inference(model):
    """Put a trained network in eval mode with deterministic behaviour and return it.

    MambaIRv2 routes tokens with Gumbel noise even in eval mode (official inference is random);
    a teacher whose outputs become data (HR targets, features) must not depend on chance or on
    the batch size, so its routing becomes the noise-free argmax. Other networks are unchanged.
    """
    model.eval()
    if hasattr(model, "set_routing"):
        model.set_routing("argmax")
    return model

__all__ = [
    "ARCHITECTURES",
    "MODEL_PRESETS",
    "build_model",
    "deterministic_inference",
    "import_official_weights",
    "load_model",
    "load_official_weights",
    "read_model_metadata",
    "resolve",
    "save_model",
    "set_fused_attention",
    "set_window_attention",
]
