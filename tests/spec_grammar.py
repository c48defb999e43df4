"""A grammar of job specs for hypothesis: stacks of Keras layers that real Keras builds, in the forms a
user writes them (Sequential with keras.Input, with input_shape=, with no input; functional, with two
branches merged), and compile settings drawn from the signatures of Keras' own optimizer, schedule,
loss and metric classes. tests/api/test_spec_property.py sends them through the submit path in CI;
bench/spec_property.py sends more of them.

About one drawn value in ten is out of range (negative widths, a kernel too big or of the wrong rank,
a rate above 1): Keras refuses most of those itself, and a model Keras will not build is drawn again,
except in the service's own `model.layers` form, where the server alone must refuse it.
"""

import inspect
import io
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from app.training.registry import loss_classes, metric_classes, optimizer_classes, schedule_classes
from tests.keras_catalogue import GROUPS, group_arrays

# Input groups of tests/keras_catalogue.py: one of each rank a stack of layers starts from.
INPUT_GROUPS = ("flat", "ids", "seq", "img", "vol")
CLASSES = 3
OUTPUT = "out"  # the name of the Dense a drawn head ends in
LABELS = ("value", "class", "one_hot")
MAX_DEPTH = 4

Strategy = st.SearchStrategy[Any]


def _mostly(valid: Strategy, invalid: Strategy) -> Strategy:
    """`valid` nine times in ten: enough out-of-range values to reach every refusal, not so many
    that most models are drawn again."""
    return st.integers(0, 9).flatmap(lambda roll: invalid if roll == 0 else valid)


WIDTH = _mostly(st.integers(1, 12), st.sampled_from([0, -2]))
RATE = _mostly(st.floats(0.0, 0.9), st.sampled_from([1.0, -0.1, 1.5]))
SMALL_FLOAT = _mostly(st.floats(0.0, 2.0), st.sampled_from([-1.0, 1e6]))
ACTIVATION = _mostly(
    st.sampled_from([None, "relu", "tanh", "sigmoid", "softmax", "gelu", "swish", "elu", "selu", "linear", "leaky_relu"]),
    st.just("no_such_activation"),
)
INITIALIZER = st.sampled_from(["glorot_uniform", "he_normal", "zeros", "orthogonal", "lecun_uniform"])
REGULARIZER = st.sampled_from(["l1", "l2", "l1_l2", {"class_name": "L2", "config": {"l2": 0.01}}])


def _sizes(rank: int, low: int, high: int) -> Strategy:
    """A size per spatial axis, as one int or a tuple; sometimes a tuple of the wrong length."""
    valid = st.integers(low, high) | st.tuples(*[st.integers(low, high)] * rank)
    return _mostly(valid, st.sampled_from([0, (2,) * (rank + 1)]))


def _padding(extra: tuple[str, ...] = ()) -> Strategy:
    return _mostly(st.sampled_from(["valid", "same", *extra]), st.just("full"))


def _kwargs(required: dict[str, Strategy], optional: dict[str, Strategy] | None = None) -> Strategy:
    return st.fixed_dictionaries(required, optional=optional or {})


def _conv(rank: int, depthwise: bool = False) -> Strategy:
    optional = {
        "strides": _sizes(rank, 1, 3),
        "padding": _padding(("causal",) if rank == 1 else ()),
        "activation": ACTIVATION,
        "use_bias": st.booleans(),
        "dilation_rate": st.integers(1, 2),
        "kernel_initializer": INITIALIZER,
        "kernel_regularizer": REGULARIZER,
    }
    required = {"kernel_size": _sizes(rank, 1, 4)}
    if depthwise:
        optional["depth_multiplier"] = WIDTH
    else:
        required["filters"] = WIDTH
    return _kwargs(required, optional)


def _pool(rank: int) -> Strategy:
    return _kwargs({}, {"pool_size": _sizes(rank, 1, 3), "strides": _sizes(rank, 1, 2), "padding": _padding()})


def _recurrent() -> Strategy:
    return _kwargs(
        {"units": WIDTH},
        {"return_sequences": st.booleans(), "dropout": RATE, "activation": ACTIVATION, "go_backwards": st.booleans()},
    )


@dataclass(frozen=True)
class LayerDraw:
    """A drawn layer: its keras.layers class, its arguments, and the layer a wrapper wraps."""

    name: str
    kwargs: dict[str, Any]
    inner: "LayerDraw | None" = None

    def make(self, **extra: Any) -> Any:
        import keras

        cls = getattr(keras.layers, self.name)
        if self.inner is not None:
            return cls(self.inner.make(), **self.kwargs, **extra)
        return cls(**self.kwargs, **extra)

    def as_layer_spec(self) -> dict[str, Any]:
        """In the service's own `model.layers` form, which takes no wrappers."""
        return {"type": self.name, **json.loads(json.dumps(self.kwargs))}


@dataclass(frozen=True)
class Rule:
    name: str
    kwargs: Strategy
    inner: Strategy | None = None  # a wrapper draws the layer it wraps


def _rules_by_rank() -> dict[int, list[Rule]]:
    """The layers a tensor of each rank (axes after the batch) can be given."""
    by_rank: dict[int, list[Rule]] = {rank: [] for rank in range(1, 5)}

    def add(ranks: range | int, names: str, kwargs: Strategy | None = None, inner: Strategy | None = None) -> None:
        for rank in [ranks] if isinstance(ranks, int) else ranks:
            by_rank[rank] += [Rule(name, kwargs if kwargs is not None else st.just({}), inner) for name in names.split()]

    every = range(1, 5)
    add(
        every,
        "Dense",
        _kwargs(
            {"units": WIDTH},
            {
                "activation": ACTIVATION,
                "use_bias": st.booleans(),
                "kernel_initializer": INITIALIZER,
                "kernel_regularizer": REGULARIZER,
            },
        ),
    )
    add(every, "Dropout GaussianDropout AlphaDropout", _kwargs({"rate": RATE}))
    add(every, "GaussianNoise", _kwargs({"stddev": SMALL_FLOAT}))
    add(every, "BatchNormalization", _kwargs({}, {"momentum": RATE, "epsilon": SMALL_FLOAT, "axis": st.sampled_from([-1, 1, 5])}))
    add(every, "LayerNormalization", _kwargs({}, {"epsilon": SMALL_FLOAT, "center": st.booleans()}))
    add(every, "Activation", _kwargs({"activation": ACTIVATION}))
    add(every, "ReLU", _kwargs({}, {"max_value": SMALL_FLOAT, "negative_slope": SMALL_FLOAT}))
    add(every, "LeakyReLU", _kwargs({}, {"negative_slope": SMALL_FLOAT}))
    add(every, "ELU", _kwargs({}, {"alpha": SMALL_FLOAT}))
    add(every, "Softmax", _kwargs({}, {"axis": st.sampled_from([-1, 1, 2])}))
    add(every, "PReLU UnitNormalization Identity Flatten")
    add(every, "ActivityRegularization", _kwargs({}, {"l1": SMALL_FLOAT, "l2": SMALL_FLOAT}))

    add(1, "RepeatVector", _kwargs({"n": WIDTH}))
    add(1, "Reshape", _kwargs({"target_shape": st.sampled_from([(2, -1), (-1, 1), (2, 3), (2, 1, -1), (-1,), (5, 5)])}))
    add(1, "Embedding", _kwargs({"input_dim": WIDTH, "output_dim": WIDTH}, {"mask_zero": st.booleans()}))
    add(
        1, "CategoryEncoding", _kwargs({"num_tokens": WIDTH}, {"output_mode": st.sampled_from(["one_hot", "multi_hot", "count"])})
    )
    add(1, "Discretization", _kwargs({"bin_boundaries": st.lists(st.floats(-2, 2), min_size=1, max_size=4).map(sorted)}))

    for rank, suffix in ((2, "1D"), (3, "2D"), (4, "3D")):
        spatial = rank - 1
        add(rank, f"Conv{suffix} Conv{suffix}Transpose", _conv(spatial))
        if spatial < 3:
            add(rank, f"SeparableConv{suffix}", _conv(spatial))
            add(rank, f"DepthwiseConv{suffix}", _conv(spatial, depthwise=True))
        add(rank, f"MaxPooling{suffix} AveragePooling{suffix}", _pool(spatial))
        add(rank, f"GlobalAveragePooling{suffix} GlobalMaxPooling{suffix}", _kwargs({}, {"keepdims": st.booleans()}))
        add(rank, f"Cropping{suffix}", _kwargs({}, {"cropping": _sizes(spatial, 0, 3)}))
        add(rank, f"ZeroPadding{suffix}", _kwargs({}, {"padding": _sizes(spatial, 0, 2)}))
        add(rank, f"UpSampling{suffix}", _kwargs({}, {"size": _sizes(spatial, 1, 2)}))
        add(rank, f"SpatialDropout{suffix}", _kwargs({"rate": RATE}))

    add(2, "LSTM GRU SimpleRNN", _recurrent())
    recurrent_inner = st.builds(LayerDraw, st.sampled_from(["LSTM", "GRU", "SimpleRNN"]), _recurrent())
    add(2, "Bidirectional", _kwargs({}, {"merge_mode": st.sampled_from(["concat", "sum", "mul", "ave", None])}), recurrent_inner)
    add(2, "TimeDistributed", st.just({}), st.builds(LayerDraw, st.just("Dense"), _kwargs({"units": WIDTH})))
    add(2, "Permute", _kwargs({"dims": st.sampled_from([(2, 1), (1, 2), (1, 3)])}))
    add(2, "Masking", _kwargs({}, {"mask_value": st.floats(-1, 1)}))
    add(3, "ConvLSTM1D", _conv(1))

    image = _kwargs({"height": WIDTH, "width": WIDTH}, {"interpolation": st.sampled_from(["bilinear", "nearest", "bicubic"])})
    add(3, "Resizing", image)
    add(3, "CenterCrop", _kwargs({"height": WIDTH, "width": WIDTH}))
    add(3, "Rescaling", _kwargs({"scale": SMALL_FLOAT}, {"offset": SMALL_FLOAT}))
    add(
        3, "RandomFlip", _kwargs({}, {"mode": st.sampled_from(["horizontal", "vertical", "horizontal_and_vertical", "diagonal"])})
    )
    add(3, "RandomRotation RandomContrast", _kwargs({"factor": RATE}))
    add(3, "RandomZoom", _kwargs({"height_factor": RATE}, {"width_factor": RATE}))
    add(4, "ConvLSTM2D", _conv(2))
    return by_rank


RULES = _rules_by_rank()
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")


def _apply(draws: list[LayerDraw], tensor: Any) -> Any:
    for draw in draws:
        tensor = draw.make()(tensor)
    return tensor


@st.composite
def _stack(draw: st.DrawFn, inputs: Any, depth: int) -> tuple[list[LayerDraw], int | None]:
    """Up to `depth` layers, each drawn for the rank its input has, and the rank of what they give
    (None: Keras refused the last one, and the stack stops there, as no rank is known after it)."""
    draws: list[LayerDraw] = []
    tensor = inputs
    for _ in range(depth):
        rule = draw(st.sampled_from(RULES[len(tensor.shape) - 1]))
        inner = draw(rule.inner) if rule.inner is not None else None
        layer = LayerDraw(rule.name, draw(rule.kwargs), inner)
        draws.append(layer)
        try:
            tensor = layer.make()(tensor)
        except Exception:
            return draws, None
    return draws, len(tensor.shape) - 1


def _head(draw: st.DrawFn, rank: int, labels: str) -> list[LayerDraw]:
    """What takes the stack to the labels: down to one axis, then a Dense the labels fit, mostly."""
    head = []
    if rank > 1:
        pooling = ["Flatten"] + ([f"GlobalAveragePooling{rank - 1}D", f"GlobalMaxPooling{rank - 1}D"] if rank < 5 else [])
        head.append(LayerDraw(draw(st.sampled_from(pooling)), {}))
    fitted = 1 if labels == "value" else CLASSES
    units = draw(_mostly(st.just(fitted), st.sampled_from([1, CLASSES])))
    activation = draw(st.sampled_from([None, "softmax", "sigmoid"] if units > 1 else [None, "sigmoid"]))
    return [*head, LayerDraw("Dense", {"units": units, "activation": activation, "name": OUTPUT})]


FORMS = ("sequential_input", "sequential_input_shape", "sequential_no_input", "functional", "functional_merge", "layers")


@dataclass
class Example:
    """One drawn spec: everything but the dataset, which the group and labels pick."""

    group: str
    labels: str
    form: str
    body: dict[str, Any] = field(default_factory=dict)

    def spec(self, dataset_ids: dict[tuple[str, str], str]) -> dict[str, Any]:
        return {"dataset_id": dataset_ids[(self.group, self.labels)], **self.body}


def _keras_json(draw: st.DrawFn, form: str, group: str, stacks: list[list[LayerDraw]], head: list[LayerDraw]) -> tuple[Any, str]:
    """The model Keras builds from the drawn layers in `form`, as its to_json(), with its output's name."""
    import keras

    shape, dtype = GROUPS[group].shape, GROUPS[group].dtype
    layers = stacks[0] + head
    if form.startswith("sequential"):
        if form == "sequential_input":
            model = keras.Sequential([keras.Input(shape, dtype=dtype), *(d.make() for d in layers)])
        elif form == "sequential_input_shape":
            model = keras.Sequential([layers[0].make(input_shape=shape), *(d.make() for d in layers[1:])])
        else:
            model = keras.Sequential([d.make() for d in layers])
            sent = model.to_json()  # as the user holds it: never built, so it declares no input
            model.build((None, *shape))
            return sent, model.layers[-1].name
        return model.to_json(), model.layers[-1].name
    inputs = keras.Input(shape, dtype=dtype)
    tensor = _apply(stacks[0], inputs)
    if len(stacks) > 1:
        branches = [tensor, _apply(stacks[1], inputs)]
        branches = [keras.layers.Flatten()(b) if len(b.shape) > 2 else b for b in branches]
        if draw(st.booleans()):  # the same width on both sides, so every merge can take them
            width = draw(st.integers(1, 8))
            branches = [keras.layers.Dense(width)(b) for b in branches]
        tensor = getattr(keras.layers, draw(st.sampled_from(MERGES)))()(branches)
    model = keras.Model(inputs, _apply(head, tensor))
    return model.to_json(), model.layers[-1].name


@st.composite
def examples(draw: st.DrawFn) -> Example:
    # Keras seeds its random layers and initializers from Python's random module; hypothesis asks
    # that a strategy leave that module's state as it found it.
    state = random.getstate()
    try:
        return draw(_examples())
    finally:
        random.setstate(state)


@st.composite
def _examples(draw: st.DrawFn) -> Example:
    import keras

    keras.backend.clear_session(free_memory=False)  # the names Keras gives layers stay short; no gc pass
    group = draw(st.sampled_from(INPUT_GROUPS))
    labels = draw(st.sampled_from(LABELS))
    form = draw(st.sampled_from(FORMS))
    inputs = keras.Input(GROUPS[group].shape, dtype=GROUPS[group].dtype)
    stack, rank = draw(_stack(inputs, draw(st.integers(1, MAX_DEPTH))))
    head = _head(draw, rank or 1, labels) if draw(_mostly(st.just(True), st.just(False))) else []
    if form == "layers":
        if any(d.inner is not None for d in stack):
            form = "functional"
        else:
            model: dict[str, Any] = {"layers": [d.as_layer_spec() for d in stack + head]}
            output = None
    if form != "layers":
        assume(rank is not None)
        stacks = [stack]
        if form == "functional_merge":
            second, second_rank = draw(_stack(inputs, draw(st.integers(1, 2))))
            assume(second_rank is not None)
            stacks.append(second)
        try:
            sent, output = _keras_json(draw, form, group, stacks, head)
        except Exception:
            assume(False)  # the invariant is about the models Keras itself builds
        model = {"keras_json": sent if draw(st.booleans()) else json.loads(sent)}
    fit: dict[str, Any] = {"epochs": 1, "batch_size": 8}
    if draw(_mostly(st.just(False), st.just(True))):
        fit["normalize"] = draw(st.sampled_from(["minmax", "standard"]))
    body = {"model": model, "compile": draw(compile_specs(labels, output)), "fit": fit}
    return Example(group, labels, form, body)


# Values for keyword arguments by name, where a default of None or a string says nothing of the range.
NAMED_ARGUMENTS: dict[str, Strategy] = {
    "learning_rate": _mostly(st.floats(1e-5, 0.1), st.sampled_from([0.0, -0.01])),
    "clipnorm": _mostly(st.floats(0.1, 5.0), st.just(-1.0)),
    "clipvalue": _mostly(st.floats(0.1, 5.0), st.just(-1.0)),
    "global_clipnorm": _mostly(st.floats(0.1, 5.0), st.just(-1.0)),
    "weight_decay": st.floats(0.0, 0.1),
    "gradient_accumulation_steps": _mostly(st.integers(2, 4), st.just(1)),
    "inner_optimizer": st.sampled_from(["adam", "sgd", {"type": "SGD", "learning_rate": 0.01}, "no_such_optimizer"]),
    "initial_learning_rate": _mostly(st.floats(1e-4, 0.1), st.just(-0.1)),
    "decay_rate": st.floats(0.1, 1.0),
    "reduction": _mostly(st.sampled_from(["sum_over_batch_size", "sum", "mean", "none"]), st.just("no_such_reduction")),
    "curve": st.sampled_from(["ROC", "PR", "no_such_curve"]),
    "summation_method": st.sampled_from(["interpolation", "minoring", "majoring"]),
    "average": st.sampled_from([None, "micro", "macro", "weighted"]),
    "thresholds": st.floats(0.0, 1.0) | st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3),
    "threshold": st.floats(0.0, 1.0),
    "top_k": _mostly(st.integers(1, 3), st.just(0)),
    "class_id": st.integers(0, CLASSES),
    "k": _mostly(st.integers(1, 5), st.just(0)),
    "num_classes": _mostly(st.integers(1, 4), st.just(0)),
    "target_class_ids": st.lists(st.integers(0, CLASSES), min_size=1, max_size=2, unique=True),
    "axis": st.sampled_from([-1, 1, 2]),
    "name": st.sampled_from(["first", "second"]),  # twice in one list, two metrics share a name
    "decay_steps": _mostly(st.integers(1, 1000), st.just(0)),
    "first_decay_steps": _mostly(st.integers(1, 1000), st.just(0)),
    "boundaries": st.lists(st.integers(1, 1000), min_size=1, max_size=3, unique=True).map(sorted),
    "values": st.lists(st.floats(1e-5, 0.1), min_size=1, max_size=4),
    "warmup_target": st.none() | st.floats(1e-4, 0.1),
    "warmup_steps": st.integers(0, 100),
}
# Keyword arguments no spec can carry usefully: a dtype policy, or an object (an optimizer, a function).
UNDRAWN = frozenset({"dtype", "fn", "exclude_layers", "label_weights", "num_labels", "optimizer_map"})


def _like(default: Any) -> Strategy | None:
    """Values of the default's type, or None where the type says nothing of what to draw."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return _mostly(st.integers(1, 10), st.integers(-3, 0))
    if isinstance(default, float):
        return SMALL_FLOAT
    return None


def _arguments_of(cls: type) -> tuple[dict[str, Strategy], dict[str, Strategy]]:
    """(required, optional) keyword arguments of `cls.__init__` that can be drawn."""
    required, optional = {}, {}
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or parameter.name in UNDRAWN:
            continue
        strategy = NAMED_ARGUMENTS[parameter.name] if parameter.name in NAMED_ARGUMENTS else _like(parameter.default)
        if strategy is None:
            continue
        (required if parameter.default is parameter.empty else optional)[parameter.name] = strategy
    return required, optional


@st.composite
def keras_object(draw: st.DrawFn, classes: dict[str, type], learning_rates: Strategy | None = None) -> dict[str, Any]:
    """{"type": a class of Keras', **a few of its keyword arguments}, drawn from its signature;
    `learning_rates`, sometimes, for a class that takes a learning rate (a schedule, say)."""
    name = draw(st.sampled_from(sorted(classes)))
    required, optional = _arguments_of(classes[name])
    chosen = draw(st.lists(st.sampled_from(sorted(optional)), max_size=3, unique=True)) if optional else []
    arguments = {key: draw(strategy) for key, strategy in required.items()}
    arguments |= {key: draw(optional[key]) for key in chosen}
    if learning_rates is not None and "learning_rate" in optional and draw(_mostly(st.just(False), st.just(True))):
        arguments["learning_rate"] = draw(learning_rates)
    return {"type": name, **arguments}


@st.composite
def schedules(draw: st.DrawFn) -> dict[str, Any]:
    """A keras.optimizers.schedules object, as {"type": ...} or in Keras' own serialized form."""
    import keras

    chosen = draw(keras_object(schedule_classes()))
    if "boundaries" in chosen and draw(_mostly(st.just(True), st.just(False))):  # one value more than boundaries
        chosen["values"] = draw(
            st.lists(st.floats(1e-5, 0.1), min_size=len(chosen["boundaries"]) + 1, max_size=len(chosen["boundaries"]) + 1)
        )
    if draw(st.booleans()):
        return chosen
    kind, arguments = chosen["type"], {k: v for k, v in chosen.items() if k != "type"}
    try:
        return dict(keras.optimizers.schedules.serialize(schedule_classes()[kind](**arguments)))
    except Exception:
        return chosen  # Keras will not make it, so it has no serialized form: the {"type": ...} form it is


def _function_names(namespace: Any) -> list[str]:
    return sorted(
        n for n, obj in vars(namespace).items() if inspect.isfunction(obj) and n not in ("get", "serialize", "deserialize")
    )


def _losses() -> Strategy:
    import keras

    names = st.sampled_from([*_function_names(keras.losses), "mse", "mae", "mape", "msle", "kld", "no_such_loss"])
    return names | keras_object(loss_classes())


def _metrics(labels: str) -> Strategy:
    import keras

    names = st.sampled_from([*_function_names(keras.metrics), "accuracy", "acc", "mse", "mae", "crossentropy", "no_such_metric"])
    return st.lists(st.sampled_from(FITTED_METRICS[labels]) | names | keras_object(metric_classes()), max_size=3)


# What a user would pick for each kind of labels; the rest of Keras' catalogue is drawn as often.
FITTED_LOSSES = {
    "value": ["mse", "mae", "huber", "log_cosh", {"type": "Huber", "delta": 0.5}],
    "class": ["sparse_categorical_crossentropy", {"type": "SparseCategoricalCrossentropy", "from_logits": True}],
    "one_hot": ["categorical_crossentropy", {"type": "CategoricalCrossentropy", "label_smoothing": 0.1}, "kl_divergence"],
}
FITTED_METRICS = {
    "value": ["mae", "mse", {"type": "RootMeanSquaredError"}, {"type": "R2Score"}],
    "class": ["accuracy", "sparse_categorical_accuracy", {"type": "SparseTopKCategoricalAccuracy", "k": 2}],
    "one_hot": [
        "accuracy",
        "categorical_accuracy",
        {"type": "AUC"},
        {"type": "Precision"},
        {"type": "TopKCategoricalAccuracy", "k": 2},
    ],
}


@st.composite
def compile_specs(draw: st.DrawFn, labels: str, output: str | None) -> dict[str, Any]:
    """`output`: the name of the model's output, where the test knows it, for per-output settings."""
    optimizer_names = st.sampled_from(sorted([*optimizer_classes(), *(n.lower() for n in optimizer_classes())]))
    optimizer = draw(optimizer_names | keras_object(optimizer_classes(), learning_rates=schedules()))
    loss = draw(st.sampled_from(FITTED_LOSSES[labels]) | _losses())
    spec: dict[str, Any] = {"optimizer": optimizer, "loss": loss, "metrics": draw(_metrics(labels))}
    per_output = [output or OUTPUT, "no_such_output"]
    if draw(_mostly(st.just(False), st.just(True))):
        spec["loss"] = {draw(_mostly(st.just(per_output[0]), st.just(per_output[1]))): loss}
    if draw(st.integers(0, 3)) == 0:
        spec["metrics"] = {draw(_mostly(st.just(per_output[0]), st.just(per_output[1]))): spec["metrics"]}
    if draw(st.integers(0, 3)) == 0:
        spec["weighted_metrics"] = draw(_metrics(labels))
    if draw(st.integers(0, 4)) == 0:
        weight = draw(st.floats(0.0, 2.0))
        spec["loss_weights"] = draw(
            st.sampled_from([[weight], {per_output[0]: weight}, {per_output[1]: weight}, [weight, weight]])
        )
    return spec


def dataset_npz(group: str, labels: str) -> bytes:
    """The group's samples, with labels of one kind: a value, a class id, or a one-hot row."""
    arrays = group_arrays(group)
    classes = np.arange(len(arrays["x"])) % CLASSES
    y = {"value": arrays["y"], "class": classes, "one_hot": np.eye(CLASSES, dtype=np.float32)[classes]}[labels]
    buffer = io.BytesIO()
    np.savez(buffer, x=arrays["x"], y=y)
    return buffer.getvalue()


def upload_datasets(client: Any) -> dict[tuple[str, str], str]:
    """One dataset per input group and kind of labels, uploaded through the API: key → dataset id."""
    ids = {}
    for group in INPUT_GROUPS:
        for labels in LABELS:
            response = client.post("/v1/datasets", files={"file": ("data.npz", dataset_npz(group, labels))})
            assert response.status_code == 201, response.text
            ids[(group, labels)] = response.json()["id"]
    return ids


def outcome(response: Any) -> tuple[str, str]:
    """(status, where): what the property allows is ("202", "") or ("422", the field at fault, cut to its
    first two names); anything else comes back with the response's text."""
    if response.status_code == 202:
        return "202", ""
    if response.status_code == 422:
        error = (response.json().get("errors") or [{}])[0]
        if error.get("path") and error.get("message"):
            return "422", ".".join(re.sub(r"\[\d+\]", "", error["path"]).split(".")[:2])
        return "422 without a path and a message", response.text[:500]
    return str(response.status_code), response.text[:500]
