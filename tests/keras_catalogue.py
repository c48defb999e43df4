"""Keras' layer catalogue as the installed Keras exports it: each public class of `keras.layers` gets a
minimal model that uses it, or is refused by the service with a reason, or is listed with why no
model can use it here. A class that is in none of the three fails tests/integration/test_keras_catalogue.py:
a new Keras release's new layer is noticed, not skipped.

Every minimal model is one branch: an input of its group's shape, the layer, and a head that flattens
to one number. Alone, a branch is what the submit-time check takes; all branches of a group side by
side, summed into one output, are what one job trains, so a worker trains the catalogue in a few jobs.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

SAMPLES = 16


@dataclass(frozen=True)
class Group:
    """The inputs a family of layers takes: one sample's shape, and how its values are drawn."""

    shape: tuple[int, ...]
    draw: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    dtype: str = "float32"  # the model's Input: Keras casts the dataset's float32 arrays to it


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


def _pixels(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(0, 255, size=shape).astype(np.float32)


def _token_ids(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 10, size=shape).astype(np.float32)


GROUPS: dict[str, Group] = {
    "flat": Group((8,), _normal),
    "ids": Group((6,), _token_ids, "int32"),
    "seq": Group((6, 4), _normal),
    "audio": Group((64,), _normal),
    "wave": Group((64, 1), _normal),
    "img": Group((8, 8, 3), _pixels),
    "vol": Group((4, 4, 4, 2), _normal),
    "frames1d": Group((3, 6, 2), _normal),
    "frames2d": Group((2, 6, 6, 2), _normal),
    "frames3d": Group((2, 4, 4, 4, 1), _normal),
}

# Refused by the service at submit time: these run code the user sends, or read server files.
REFUSED = {
    "Lambda": "runs Python code sent with the model",
    "TFSMLayer": "loads a SavedModel from a path on the server",
    "JaxLayer": "runs a JAX function sent with the model",
    "FlaxLayer": "runs a Flax module sent with the model",
    "TorchModuleWrapper": "runs a PyTorch module sent with the model",
}

class KerasFault(NamedTuple):
    group: str
    build: Callable[[Any, Any], Any]
    path: str  # where the 422 points
    says: str  # what Keras' message, which the 422 carries, says
    why: str


def keras_faults() -> dict[str, KerasFault]:
    """Keras itself fails these in the form a user writes them: the service answers 422 with Keras' message."""
    return {
        "RandomCrop": KerasFault(
            "img",
            _call(height=4, width=4),
            "model",
            "incompatible with the layer",
            "Keras 3.15 returns the uncropped image outside training, so a model built on the cropped "
            "shape trains but cannot evaluate or predict",
        ),
        "RandomShear": KerasFault(
            "img",
            _call(x_factor=0.1, y_factor=0.1),
            "model.keras_json",
            "The `factor` argument should be a number",
            "Keras 3.15 writes a one-number factor f as the range [-f, f] in to_json(), which it then refuses "
            "to rebuild; a range of non-negative numbers, e.g. x_factor=(0.0, 0.1), trains",
        ),
    }


# In keras.layers, but no minimal model can use them as they stand: said why, not hidden.
NOT_BUILDABLE = {
    "InputSpec": "not a layer: it describes the input a layer expects",
    "Layer": "the abstract base of every layer; a subclass is custom code",
    "Wrapper": "the abstract base of wrappers (Bidirectional, TimeDistributed, trained here)",
    "StringLookup": "takes strings; Epochly's datasets are numeric arrays",
    "TextVectorization": "takes strings; Epochly's datasets are numeric arrays",
    "MaxNumBoundingBoxes": "pads bounding-box dictionaries for detection pipelines; it takes no array of samples",
}

# Trained in every model without a branch of its own: each starts with one.
IN_EVERY_MODEL = "InputLayer"


def _call(**kwargs: Any) -> Callable[[Any, Any], Any]:
    return lambda cls, x: cls(**kwargs)(x)


def _pair(cls: Any, x: Any) -> Any:
    """Merging layers take two tensors of one shape."""
    import keras

    return cls()([x, keras.layers.Dense(8)(x)])


def _attend(**kwargs: Any) -> Callable[[Any, Any], Any]:
    return lambda cls, x: cls(**kwargs)([x, x])


def _self_attend(**kwargs: Any) -> Callable[[Any, Any], Any]:
    return lambda cls, x: cls(**kwargs)(x, x)


def _wrapping(make_inner: Callable[[], Any]) -> Callable[[Any, Any], Any]:
    return lambda cls, x: cls(make_inner())(x)


def _hashed_crossing(cls: Any, x: Any) -> Any:
    """Crosses two features; two one-feature columns of the ids, cut with Cropping1D (a slice
    `x[:, 0]` would be a keras.ops operation, which the service refuses)."""
    import keras

    columns = keras.layers.Reshape((6, 1))(x)
    first = keras.layers.Flatten()(keras.layers.Cropping1D((0, 5))(columns))
    second = keras.layers.Flatten()(keras.layers.Cropping1D((5, 0))(columns))
    return cls(num_bins=8, output_mode="one_hot")((first, second))


def _pipeline(cls: Any, x: Any) -> Any:
    import keras

    return cls([keras.layers.RandomFlip(), keras.layers.Rescaling(1 / 255)])(x)


def _recipes() -> dict[str, tuple[str, Callable[[Any, Any], Any]]]:
    """Class name → (input group, how a branch uses it). Classes not named here take no argument."""
    import keras

    conv = {"filters": 4, "kernel_size": 3, "padding": "same"}
    value_range = {"value_range": (0, 255)}
    recipes: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {}

    def add(names: str, group: str, build: Callable[[Any, Any], Any] | None = None) -> None:
        for name in names.split():
            recipes[name] = (group, build or _call())

    add("Dense", "flat", _call(units=4))
    add("Activation", "flat", _call(activation="relu"))
    add("ActivityRegularization Identity ELU LeakyReLU PReLU ReLU Softmax LayerNormalization RMSNormalization", "flat")
    add("UnitNormalization BatchNormalization Masking", "flat")
    add("AlphaDropout Dropout GaussianDropout", "flat", _call(rate=0.1))
    add("GaussianNoise", "flat", _call(stddev=0.1))
    add("GroupNormalization", "flat", _call(groups=2))
    add("EinsumDense", "flat", _call(equation="ab,bc->ac", output_shape=4, bias_axes="c"))
    add("RepeatVector", "flat", _call(n=3))
    add("Reshape", "flat", _call(target_shape=(2, 4)))
    add("Normalization", "flat", _call(mean=0.0, variance=1.0))
    add("Discretization", "flat", _call(bin_boundaries=[-1.0, 0.0, 1.0], output_mode="one_hot"))
    add("SpectralNormalization", "flat", _wrapping(lambda: keras.layers.Dense(4)))
    add("Add Average Maximum Minimum Multiply Subtract Concatenate", "flat", _pair)
    add("Dot", "flat", lambda cls, x: cls(axes=1)([x, keras.layers.Dense(8)(x)]))

    add("Embedding ReversibleEmbedding", "ids", _call(input_dim=10, output_dim=4))
    add("CategoryEncoding", "ids", _call(num_tokens=10, output_mode="multi_hot"))
    add("Hashing", "ids", _call(num_bins=8, output_mode="multi_hot"))
    add("IntegerLookup", "ids", _call(vocabulary=list(range(10)), output_mode="multi_hot"))
    add("HashedCrossing", "ids", _hashed_crossing)

    add("Conv1D Convolution1D Conv1DTranspose Convolution1DTranspose SeparableConv1D SeparableConvolution1D", "seq", _call(**conv))
    add("DepthwiseConv1D", "seq", _call(kernel_size=3, padding="same"))
    add("AveragePooling1D AvgPool1D", "seq", _call(pool_size=2))
    add("MaxPooling1D MaxPool1D UpSampling1D", "seq")
    add("GlobalAveragePooling1D GlobalAvgPool1D GlobalMaxPooling1D GlobalMaxPool1D", "seq")
    add("AdaptiveAveragePooling1D AdaptiveMaxPooling1D", "seq", _call(output_size=2))
    add("Cropping1D ZeroPadding1D", "seq")
    add("SpatialDropout1D", "seq", _call(rate=0.1))
    add("LSTM GRU SimpleRNN", "seq", _call(units=4))
    add("Bidirectional", "seq", _wrapping(lambda: keras.layers.LSTM(4)))
    add("TimeDistributed", "seq", _wrapping(lambda: keras.layers.Dense(3)))
    add("Permute", "seq", _call(dims=(2, 1)))
    add("Attention AdditiveAttention", "seq", _attend())
    add("MultiHeadAttention", "seq", _self_attend(num_heads=2, key_dim=2))
    add("GroupQueryAttention", "seq", _self_attend(head_dim=2, num_query_heads=2, num_key_value_heads=1))
    add("LSTMCell GRUCell SimpleRNNCell", "seq", lambda cls, x: keras.layers.RNN(cls(4))(x))
    add("StackedRNNCells", "seq", lambda cls, x: keras.layers.RNN(cls([keras.layers.LSTMCell(4), keras.layers.GRUCell(4)]))(x))
    add("RNN", "seq", lambda cls, x: cls(keras.layers.SimpleRNNCell(4))(x))

    add("STFTSpectrogram", "wave", _call(frame_length=16, frame_step=8, fft_length=16, expand_dims=True))
    add("MelSpectrogram", "audio", _call(fft_length=16, sequence_stride=8, sampling_rate=800, num_mel_bins=4))

    add("Conv2D Convolution2D Conv2DTranspose Convolution2DTranspose SeparableConv2D SeparableConvolution2D", "img", _call(**conv))
    add("DepthwiseConv2D", "img", _call(kernel_size=3, padding="same"))
    add("AveragePooling2D AvgPool2D", "img", _call(pool_size=2))
    add("MaxPooling2D MaxPool2D UpSampling2D Flatten", "img")
    add("GlobalAveragePooling2D GlobalAvgPool2D GlobalMaxPooling2D GlobalMaxPool2D", "img")
    add("AdaptiveAveragePooling2D AdaptiveMaxPooling2D", "img", _call(output_size=2))
    add("Cropping2D ZeroPadding2D", "img")
    add("SpatialDropout2D", "img", _call(rate=0.1))
    add("Rescaling", "img", _call(scale=1 / 255))
    add("Resizing CenterCrop", "img", _call(height=4, width=4))
    add("RandomFlip RandomInvert RandomGrayscale AutoContrast Equalization", "img")
    add("RandomRotation RandomContrast RandomBrightness", "img", _call(factor=0.1))
    add("RandomZoom", "img", _call(height_factor=0.1))
    add("RandomTranslation", "img", _call(height_factor=0.1, width_factor=0.1))
    # A one-number factor does not survive to_json() (see keras_faults); a range does.
    add("RandomShear", "img", _call(x_factor=(0.0, 0.1), y_factor=(0.0, 0.1)))
    add("RandomColorDegeneration RandomHue RandomSaturation RandomSharpness RandomPerspective", "img", _call(factor=0.2))
    add("RandomPosterization", "img", _call(factor=(1, 4), **value_range))
    add("RandomColorJitter", "img", _call(brightness_factor=0.1, contrast_factor=0.1, **value_range))
    add("RandomElasticTransform RandomErasing RandomGaussianBlur", "img", _call(**value_range))
    add("Solarization", "img", _call(addition_factor=0.1, **value_range))
    add("AugMix RandAugment", "img", _call(**value_range))
    add("CutMix MixUp", "img")
    add("ContrastLimitedAdaptiveHistogramEqualization", "img", _call(**value_range))
    add("Pipeline", "img", _pipeline)

    add("Conv3D Convolution3D Conv3DTranspose Convolution3DTranspose", "vol", _call(**conv))
    add("AveragePooling3D AvgPool3D", "vol", _call(pool_size=2))
    add("MaxPooling3D MaxPool3D UpSampling3D", "vol")
    add("GlobalAveragePooling3D GlobalAvgPool3D GlobalMaxPooling3D GlobalMaxPool3D", "vol")
    add("AdaptiveAveragePooling3D AdaptiveMaxPooling3D", "vol", _call(output_size=2))
    add("Cropping3D ZeroPadding3D", "vol")
    add("SpatialDropout3D", "vol", _call(rate=0.1))

    add("ConvLSTM1D", "frames1d", _call(filters=2, kernel_size=3, padding="same"))
    add("ConvLSTM2D", "frames2d", _call(filters=2, kernel_size=3, padding="same"))
    add("ConvLSTM3D", "frames3d", _call(filters=2, kernel_size=3, padding="same"))
    return recipes


def public_layer_classes() -> dict[str, type]:
    """Every public class `keras.layers` exports, as the installed Keras has it."""
    import keras

    return {name: obj for name, obj in sorted(vars(keras.layers).items()) if not name.startswith("_") and inspect.isclass(obj)}


def _head(tensor: Any, name: str) -> Any:
    """Flatten whatever a layer returns to one number per sample."""
    import keras

    if isinstance(tensor, list | tuple):
        tensor = tensor[0]
    if len(tensor.shape) > 2:
        tensor = keras.layers.Flatten()(tensor)
    return keras.layers.Dense(1, name=f"head_{name}")(tensor)


def branch_model(name: str) -> Any:
    """The minimal model that uses layer class `name`, on its group's input (unnamed: a plain x)."""
    group, build = _recipes()[name]
    return _single_branch(name, group, build)


def fault_model(name: str) -> Any:
    """The model of a class Keras itself fails, in the form a user writes it."""
    fault = keras_faults()[name]
    return _single_branch(name, fault.group, fault.build)


def _single_branch(name: str, group: str, build: Callable[[Any, Any], Any]) -> Any:
    import keras

    inputs = keras.Input(GROUPS[group].shape, dtype=GROUPS[group].dtype)
    return keras.Model(inputs, _head(build(getattr(keras.layers, name), inputs), name))


def group_model(group: str, names: list[str]) -> Any:
    """Every branch of one group side by side on one input, summed into one output: one job trains them all."""
    import keras

    inputs = keras.Input(GROUPS[group].shape, dtype=GROUPS[group].dtype)
    heads = [_head(_recipes()[name][1](getattr(keras.layers, name), inputs), name) for name in names]
    return keras.Model(inputs, keras.layers.Add()(heads) if len(heads) > 1 else heads[0])


def group_arrays(group: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(len(group))
    x = GROUPS[group].draw(rng, (SAMPLES, *GROUPS[group].shape))
    return {"x": x, "y": rng.normal(size=(SAMPLES, 1)).astype(np.float32)}


def covered_by_group() -> dict[str, list[str]]:
    """The classes this Keras exports that a minimal model trains, by input group; an alias (Conv2D
    and Convolution2D are one class, and to_json() names it Conv2D either way) only once."""
    recipes = _recipes()
    groups: dict[str, list[str]] = {}
    for name in aliases_of():
        if name in recipes:
            groups.setdefault(recipes[name][0], []).append(name)
    return groups


def aliases_of() -> dict[str, list[str]]:
    """Each public class by its first name, with the other names keras.layers gives it."""
    names_by_class: dict[type, list[str]] = {}
    for name, cls in public_layer_classes().items():
        names_by_class.setdefault(cls, []).append(name)
    return {names[0]: names[1:] for names in names_by_class.values()}


def unaccounted() -> list[str]:
    """Classes this Keras exports that are in no list: each needs a recipe, a refusal or a reason."""
    known = _recipes().keys() | keras_faults().keys() | REFUSED.keys() | NOT_BUILDABLE.keys() | {IN_EVERY_MODEL}
    return [name for name in public_layer_classes() if name not in known]
