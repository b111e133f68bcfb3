"""Convert PyTorch VGG weights (torchvision, VGG-Face, fine-tuned) to ``lrpjax`` checkpoints.

Run ``python -m weights_conversion FORMAT SRC.pth DEST_DIR``; the functions live in
:mod:`weights_conversion.convert`.
"""

from weights_conversion.convert import (
    FORMATS,
    convert,
    convert_file,
    finetuned_to_variables,
    read_torch_file,
    torchvision_to_variables,
    unwrap_state_dict,
    vggface_to_variables,
)

__all__ = [
    "FORMATS",
    "convert",
    "convert_file",
    "finetuned_to_variables",
    "read_torch_file",
    "torchvision_to_variables",
    "unwrap_state_dict",
    "vggface_to_variables",
]
