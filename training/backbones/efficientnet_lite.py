"""EfficientNet-Lite0..4 in Keras 3, layers mapping 1:1 onto the PyTorch reference's state dict.

The graph follows ``efficientnet-lite-pytorch==0.1.0`` (lukemelas' EfficientNet with the lite
parameters of tensorflow/tpu ``efficientnet_lite_builder.py``): ReLU6 everywhere, no
squeeze-excite, stem and head not scaled with width, first and last stages not scaled with
depth, TF "SAME" padding (Keras ``padding="same"`` on the TensorFlow backend pads exactly like
the reference's ``Conv2dStaticSamePadding``: the odd pixel goes after), BatchNorm epsilon 1e-3.

Every model takes raw float32 0..255 RGB pixels; the one ``Rescaling`` layer at the start of the
backbone maps them to ``(x - 127) / 128``, the input scaling of the TF checkpoints these weights
were converted from (``MEAN_RGB``/``STDDEV_RGB`` of ``efficientnet_lite_builder.py``).

Layer names: ``stem_*``, then one group per MBConv block named like Keras' own EfficientNet
(``block1a``, ``block2a``, ``block2b``, ... ``block7a``: stage number, then the repeat as a
letter) with suffixes ``_expand_conv/_expand_bn``, ``_dwconv/_dw_bn``, ``_project_conv/
_project_bn``, then ``head_*``; ``EfficientNetLiteSpec.block_names()`` lists the blocks in order,
so fine-tuning can unfreeze the top ones by name.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

BACKBONE_NAME = "backbone"
# Stage table of efficientnet_lite_builder.py (r1_k3_s11_e1_i32_o16, ...): repeats, kernel,
# stride, expansion ratio, input and output filters before width scaling.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# Lite variants keep the stem and the head at these widths (``fix_head_stem``).
STEM_FILTERS = 32
HEAD_FILTERS = 1280
# Channel counts are rounded to multiples of this (TPU/mobile friendly), never by > 10 % down.
DEPTH_DIVISOR = 8
# The reference's BatchNorm: TF momentum 0.99 and epsilon 1e-3 (PyTorch's default 1e-5 would
# shift every normalised activation of the converted weights).
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
# Stochastic depth of the reference, scaled linearly from 0 at the first block to this at the
# last; only active while training (fine-tuning), never at inference.
DROP_CONNECT_RATE = 0.2
# Input scaling of the TF EfficientNet-Lite checkpoints: (x - 127) / 128 on 0..255 RGB.
INPUT_MEAN = 127.0
INPUT_STD = 128.0
# The network downsamples 32x; smaller inputs leave a 1x1 map made mostly of padding.
MIN_INPUT_SIDE = 32
IMAGENET_CLASSES = 1000


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One MBConv block: ``index`` is its position in the reference's flat ``_blocks`` list."""

    index: int
    name: str
    kernel_size: int
    stride: int
    expand_ratio: int
    filters_in: int
    filters_out: int

    @property
    def has_skip(self) -> bool:
        """Identity shortcut: only where the block keeps both resolution and width."""
        return self.stride == 1 and self.filters_in == self.filters_out


@dataclasses.dataclass(frozen=True)
class EfficientNetLiteSpec:
    """Scaling coefficients of one EfficientNet-Lite variant (efficientnet_lite_builder.py)."""

    name: str
    width_coefficient: float
    depth_coefficient: float
    resolution: int
    dropout: float

    def round_filters(self, filters: int) -> int:
        """Width scaling rounded to ``DEPTH_DIVISOR`` (the reference's ``round_filters``)."""
        scaled = filters * self.width_coefficient
        rounded = max(DEPTH_DIVISOR, int(scaled + DEPTH_DIVISOR / 2) // DEPTH_DIVISOR
                      * DEPTH_DIVISOR)
        return int(rounded + DEPTH_DIVISOR if rounded < 0.9 * scaled else rounded)

    def blocks(self) -> tuple[BlockSpec, ...]:
        """All MBConv blocks in execution order, as the reference builds them."""
        blocks: list[BlockSpec] = []
        for stage, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(STAGES):
            f_in, f_out = self.round_filters(f_in), self.round_filters(f_out)
            if stage in (0, len(STAGES) - 1):  # fix_head_stem: first/last stage not deepened
                f_in = STEM_FILTERS if stage == 0 else f_in
            else:
                repeats = int(math.ceil(self.depth_coefficient * repeats))
            for repeat in range(repeats):
                blocks.append(BlockSpec(
                    index=len(blocks), name=f"block{stage + 1}{chr(ord('a') + repeat)}",
                    kernel_size=kernel, stride=stride if repeat == 0 else 1,
                    expand_ratio=expand, filters_in=f_in if repeat == 0 else f_out,
                    filters_out=f_out,
                ))
        return tuple(blocks)

    def block_names(self) -> tuple[str, ...]:
        """Block name prefixes, first to last (``block1a`` ... ``block7a``)."""
        return tuple(block.name for block in self.blocks())


# Coefficients (width, depth, resolution, dropout) of efficientnet_lite_builder.py.
EFFICIENTNET_LITE_SPECS = {
    spec.name: spec for spec in (
        EfficientNetLiteSpec("efficientnet_lite0", 1.0, 1.0, 224, 0.2),
        EfficientNetLiteSpec("efficientnet_lite1", 1.0, 1.1, 240, 0.2),
        EfficientNetLiteSpec("efficientnet_lite2", 1.1, 1.2, 260, 0.3),
        EfficientNetLiteSpec("efficientnet_lite3", 1.2, 1.4, 280, 0.3),
        EfficientNetLiteSpec("efficientnet_lite4", 1.4, 1.8, 300, 0.3),
    )
}


def efficientnet_lite_spec(variant: str) -> EfficientNetLiteSpec:
    """The spec named ``variant`` (``efficientnet_lite0`` .. ``efficientnet_lite4``).

    Raises:
        ValueError: an unknown variant name.
    """
    try:
        return EFFICIENTNET_LITE_SPECS[variant]
    except KeyError:
        raise ValueError(f"Unknown EfficientNet-Lite variant {variant!r}: choose one of "
                         f"{', '.join(EFFICIENTNET_LITE_SPECS)}.") from None


def build_efficientnet_lite_backbone(spec: EfficientNetLiteSpec, image_size: tuple[int, int], *,
                                     drop_connect_rate: float = DROP_CONNECT_RATE) -> Any:
    """The convolutional part, as a ``keras.Model`` named ``"backbone"`` (random weights).

    Args:
        spec: the variant.
        image_size: ``(height, width)``, each at least ``MIN_INPUT_SIDE``.
        drop_connect_rate: stochastic depth of the last block while training (0 disables it).

    Returns:
        A model mapping ``(N, h, w, 3)`` float32 0..255 pixels to the head's ReLU6 activations,
        ``(N, ceil(h/32), ceil(w/32), 1280)``.

    Raises:
        ValueError: an image side below ``MIN_INPUT_SIDE``.
    """
    import keras
    from keras import layers

    height, width = _checked_size(image_size)
    inputs = keras.Input(shape=(height, width, 3), name="pixels")
    x = layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="normalize")(inputs)
    x = _conv_bn_relu6(x, STEM_FILTERS, 3, 2, "stem")
    blocks = spec.blocks()
    for block in blocks:
        x = _mbconv_block(x, block, drop_connect_rate * block.index / len(blocks))
    x = _conv_bn_relu6(x, HEAD_FILTERS, 1, 1, "head")
    return keras.Model(inputs, x, name=BACKBONE_NAME)


def _checked_size(image_size: tuple[int, int]) -> tuple[int, int]:
    height, width = (int(side) for side in image_size)
    if min(height, width) < MIN_INPUT_SIDE:
        raise ValueError(f"EfficientNet-Lite needs images of at least {MIN_INPUT_SIDE}x"
                         f"{MIN_INPUT_SIDE} pixels, got {height}x{width}.")
    return height, width


def _batch_norm(name: str) -> Any:
    from keras import layers

    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _conv_bn_relu6(x: Any, filters: int, kernel_size: int, stride: int, prefix: str) -> Any:
    """Stem and head: a bias-free convolution, BatchNorm, ReLU6."""
    from keras import layers

    x = layers.Conv2D(filters, kernel_size, strides=stride, padding="same", use_bias=False,
                      name=f"{prefix}_conv")(x)
    x = _batch_norm(f"{prefix}_bn")(x)
    return layers.ReLU(6.0, name=f"{prefix}_relu6")(x)


def _mbconv_block(inputs: Any, block: BlockSpec, drop_rate: float) -> Any:
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project (linear), identity shortcut."""
    from keras import layers

    name, x = block.name, inputs
    if block.expand_ratio != 1:
        x = layers.Conv2D(block.filters_in * block.expand_ratio, 1, padding="same",
                          use_bias=False, name=f"{name}_expand_conv")(x)
        x = _batch_norm(f"{name}_expand_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_expand_relu6")(x)
    x = layers.DepthwiseConv2D(block.kernel_size, strides=block.stride, padding="same",
                               use_bias=False, name=f"{name}_dwconv")(x)
    x = _batch_norm(f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu6")(x)
    x = layers.Conv2D(block.filters_out, 1, padding="same", use_bias=False,
                      name=f"{name}_project_conv")(x)
    x = _batch_norm(f"{name}_project_bn")(x)
    if not block.has_skip:
        return x
    if drop_rate > 0:
        # Drops the whole residual branch per sample (noise shared over H, W, C), like the
        # reference's drop_connect; Dropout also rescales by 1/keep, as the reference does.
        x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
    return layers.Add(name=f"{name}_add")([x, inputs])


def build_efficientnet_lite_classifier(spec: EfficientNetLiteSpec, *,
                                       image_size: tuple[int, int] | None = None,
                                       backbone: Any = None,
                                       num_classes: int = IMAGENET_CLASSES) -> Any:
    """Backbone + average pool + dropout + dense logits: the reference's ImageNet classifier.

    Args:
        spec: the variant.
        image_size: ``(height, width)``; defaults to the variant's resolution. Ignored when
            ``backbone`` is given.
        backbone: an existing backbone to wrap (it is shared, not copied), e.g. to load a
            classifier weights file into it.
        num_classes: logits width (1000 for the ImageNet head of the pretrained weights).

    Returns:
        A ``keras.Model`` mapping float32 0..255 pixels to ``(N, num_classes)`` logits; the
        dense layer is ``"predictions"`` (the reference's ``_fc``).
    """
    import keras
    from keras import layers

    if backbone is None:
        backbone = build_efficientnet_lite_backbone(
            spec, image_size or (spec.resolution, spec.resolution))
    inputs = keras.Input(shape=backbone.input_shape[1:], name="pixels")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(backbone(inputs))
    x = layers.Dropout(spec.dropout, name="top_dropout")(x)
    outputs = layers.Dense(num_classes, name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{spec.name}_classifier")


def build_efficientnet_lite_feature_extractor(spec: EfficientNetLiteSpec, *,
                                              image_size: tuple[int, int] | None = None,
                                              backbone: Any = None) -> Any:
    """Backbone + global average pool: 0..255 pixels to the pooled 1280 features.

    Args:
        spec: the variant.
        image_size: ``(height, width)``; defaults to the variant's resolution. Ignored when
            ``backbone`` is given.
        backbone: an existing (e.g. pretrained) backbone to wrap.

    Returns:
        A ``keras.Model`` ``(N, h, w, 3)`` float32 0..255 -> ``(N, 1280)`` float32; its nested
        layer ``"backbone"`` holds every convolution.
    """
    import keras
    from keras import layers

    if backbone is None:
        backbone = build_efficientnet_lite_backbone(
            spec, image_size or (spec.resolution, spec.resolution))
    inputs = keras.Input(shape=backbone.input_shape[1:], name="pixels")
    outputs = layers.GlobalAveragePooling2D(name="avg_pool")(backbone(inputs))
    return keras.Model(inputs, outputs, name=f"{spec.name}_features")


def torch_layer_map(spec: EfficientNetLiteSpec) -> dict[str, tuple[str, str]]:
    """Reference state-dict prefix -> (Keras layer name, kind) for every weighted layer.

    ``kind`` is ``conv``, ``depthwise``, ``bn`` or ``dense``: it says how the tensors are laid
    out (see ``training.backbones.efficientnet_lite_weights``). Keras names are those of the
    classifier (the backbone's layers are nested in ``"backbone"``).
    """
    mapping = {"_conv_stem": ("stem_conv", "conv"), "_bn0": ("stem_bn", "bn")}
    for block in spec.blocks():
        prefix = f"_blocks.{block.index}"
        if block.expand_ratio != 1:
            mapping[f"{prefix}._expand_conv"] = (f"{block.name}_expand_conv", "conv")
            mapping[f"{prefix}._bn0"] = (f"{block.name}_expand_bn", "bn")
        mapping[f"{prefix}._depthwise_conv"] = (f"{block.name}_dwconv", "depthwise")
        mapping[f"{prefix}._bn1"] = (f"{block.name}_dw_bn", "bn")
        mapping[f"{prefix}._project_conv"] = (f"{block.name}_project_conv", "conv")
        mapping[f"{prefix}._bn2"] = (f"{block.name}_project_bn", "bn")
    mapping["_conv_head"] = ("head_conv", "conv")
    mapping["_bn1"] = ("head_bn", "bn")
    mapping["_fc"] = ("predictions", "dense")
    return mapping
