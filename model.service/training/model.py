"""The demo CNN: the article's contract (1x150x150x3 float32 in [0, 1] -> softmax over 5 classes)
in a strided stem, four depthwise-separable blocks and global pooling (~20 M multiply-adds per
image), so it trains on two CPU cores in minutes."""

from __future__ import annotations

import keras
from keras import layers

# Keras' default 0.99 lets the inference statistics trail the fast-changing weights of a short
# training run by hundreds of steps (validation stayed at chance for 8 of 12 epochs).
BN_MOMENTUM = 0.9


def build(num_classes: int = 5, input_shape: tuple[int, int, int] = (150, 150, 3)) -> keras.Model:
    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, (filters, pool) in enumerate(((48, True), (96, True), (160, True), (160, False))):
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"sep{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if pool:
            x = layers.MaxPooling2D(name=f"pool{i}")(x)
    # Mean and max pooling: mean sees how much of the leaf is affected, max the strongest lesion.
    x = layers.Concatenate(name="pooled")([layers.GlobalAveragePooling2D(name="gap")(x),
                                           layers.GlobalMaxPooling2D(name="gmp")(x)])
    x = layers.Dropout(0.2, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cassava_demo")
