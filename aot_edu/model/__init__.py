"""The model: the paper's modules (Sec. 3-4, Fig. 2) and their weights.

Stateless modules, bottom to top; the memories live in :mod:`aot_edu.inference`:

- :mod:`.attention` - scaled dot-product and multi-head attention (Eq. 2), long-term (Eq. 6)
  and short-term attention (Eq. 7);
- :mod:`.identity` - the identity bank: identification embedding (Eq. 3) and decoding (Eq. 5);
- :mod:`.lstt` - the Long Short-Term Transformer block and stack (Fig. 2c, Eq. 4);
- :mod:`.encoders` - MobileNetV2 / ResNet-50 backbones; :mod:`.decoder` - the FPN decoder;
- :mod:`.variants` - the variants (Table 3d) as plain data; :mod:`.aot` - :class:`AOT`, the
  whole network (Fig. 2b);
- :mod:`.zoo` - the official checkpoints and their reported scores (plain data);
  :mod:`.weights` - loading them strictly, and :func:`build_model`.
"""

from aot_edu._lazy import lazy_exports

# Names resolve on first use, so that ``aot_edu.model.zoo`` and ``aot_edu.model.variants`` (plain
# data) can be read without importing torch: the command line's start-up (``aot-edu --help``).
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".aot": ["AOT", "count_parameters", "state_dict_layout"],
    ".variants": ["VARIANTS", "AOTConfig", "get_config"],
    ".zoo": ["CHECKPOINTS", "STAGES", "CheckpointError", "describe_checkpoints", "get_checkpoint"],
    ".weights": ["build_model", "download_checkpoint", "load_state_dict_file", "load_weights"],
})
