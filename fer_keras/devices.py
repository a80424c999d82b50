"""How a run uses the devices it has: the dtype policy (mixed precision), the
distribution over several devices and hosts (each backend's own part is in
`fer_keras.backends`), and how batches are shared out so that every device gets an equal
part and every host its own.
"""

import contextlib

import numpy as np

import keras

from fer_keras import backends
from fer_keras.errors import TrainingError
from fer_keras.runinfo import accelerators, cpu_has_bfloat16


def auto_precision(devices: list[str], cpu_bfloat16: bool) -> str:
    """The dtype policy `--mixed-precision auto` picks for these devices.

    float16 on GPUs, bfloat16 on TPUs and on CPUs with native bfloat16;
    float32 on other CPUs, where emulated bfloat16 trains slower than float32
    (benchmarks/README.md, "What was tried for `cbam` training").
    """
    if devices:
        return "mixed_bfloat16" if "TPU" in devices[0].upper() else "mixed_float16"
    return "mixed_bfloat16" if cpu_bfloat16 else "float32"


def set_precision(mixed_precision: str | None) -> str:
    """Sets the global dtype policy `--mixed-precision` asks for; returns its name."""
    if mixed_precision in (None, "", "off", "float32"):
        policy = "float32"
    elif mixed_precision == "auto":
        policy = auto_precision(accelerators(), cpu_has_bfloat16())
    elif mixed_precision in ("bfloat16", "float16"):
        policy = f"mixed_{mixed_precision}"
    else:
        raise ValueError(
            "`mixed_precision` must be one of off, auto, bfloat16, float16. "
            f"Received: mixed_precision={mixed_precision!r}"
        )
    keras.config.set_dtype_policy(policy)
    return policy


class Placement:
    """Where a run trains: one device, or data parallel over several, on one
    host or (`multi_host`, jax only) on several.

    Made before the data loads, so a batch that does not split evenly over
    the devices is refused at once; `to_dict` is what run.json records, so a
    user can tell whether an 8-GPU or TPU run was parallel at all.
    """

    def __init__(self, distribute: bool, global_batch: int, multi_host: bool = False):
        self.multi_host = bool(multi_host)
        self.distribute = bool(distribute) or self.multi_host
        self.global_batch = int(global_batch)
        self.processes, self.process_index = 1, 0
        self._strategy = None
        backend = backends.get()
        name = keras.backend.backend()
        if self.multi_host and not backend.MULTI_HOST:
            raise TrainingError(
                "Training on several hosts is supported under the jax backend. "
                f"Received: backend={name!r}; use --backend jax, or drop --multi-host."
            )
        if not self.distribute:
            found = accelerators()
            self.strategy, self.devices = "single device", 1
            self.device_kind = found[0] if found else "CPU"
        elif backend.data_parallel is None:
            raise TrainingError(
                "Training on several devices is supported under the jax and tensorflow "
                f"backends. Received: backend={name!r}; use --backend jax or "
                "--backend tensorflow, or drop --distribute."
            )
        else:
            layout = backend.data_parallel(self.multi_host)
            self.strategy, self.devices = layout.strategy, layout.devices
            self.device_kind = layout.device_kind
            self.processes, self.process_index = layout.processes, layout.process_index
            self._strategy = layout.tf_strategy
        if self.global_batch % self.devices:
            lower = self.global_batch - self.global_batch % self.devices
            valid = [b for b in (lower, lower + self.devices) if b > 0]
            raise TrainingError(
                f"--batch-size {self.global_batch} does not split evenly over "
                f"{self.devices} {self.device_kind} devices. Expected a multiple of "
                f"{self.devices}, such as {' or '.join(map(str, valid))}. "
                f"Received: batch_size={self.global_batch}"
            )

    @property
    def per_device_batch(self) -> int:
        return self.global_batch // self.devices

    @property
    def is_writer(self) -> bool:
        """Whether this process writes the run folder: process 0 of a
        multi-host run, which the others must not clobber."""
        return self.process_index == 0

    @property
    def _shards(self) -> int:
        """How many equal parts every batch must split into: jax refuses a
        batch the devices cannot share evenly, and tf.distribute fed arrays
        fails on one (it splits 21 images as 11 and 10, then adds them up)."""
        return self.devices if self.distribute else 1

    def scope(self):
        """The context to build and compile the model in."""
        if self._strategy is not None:
            return self._strategy.scope()
        if self.distribute:
            # Several processes: each feeds its own share (`local_batches`).
            keras.distribution.set_distribution(keras.distribution.DataParallel(
                auto_shard_dataset=False))
        return contextlib.nullcontext()

    def evaluation_batch(self, batch_size: int) -> int:
        """`batch_size`, rounded up to a multiple of the devices that share it."""
        return -(-int(batch_size) // self._shards) * self._shards

    def pad_evaluation(self, images: np.ndarray, labels: np.ndarray):
        """`pad_evaluation` to a multiple of the devices that share each batch."""
        return pad_evaluation(images, labels, self._shards)

    def local_rows(self, count: int, batch_size: int) -> np.ndarray:
        """`process_rows` of this process."""
        return process_rows(count, batch_size, self.process_index, self.processes)

    def local_batches(self, batches):
        """This process's share of every global batch of `batches` (a
        `tf.data.Dataset` or a `keras.utils.PyDataset`): `batches` itself on
        one host.

        Every process draws the same global batches (same seed, same
        augmentation) and keeps one contiguous share of each, which jax
        assembles into the global batch: the run trains as on one host.
        """
        if self.processes == 1:
            return batches
        if isinstance(batches, keras.utils.PyDataset):
            return ProcessShare(batches, self.process_index, self.processes)
        import tensorflow as tf

        index, count = self.process_index, self.processes

        def share(*parts):
            size = tf.shape(parts[0])[0] // count
            return tuple(part[index * size:(index + 1) * size] for part in parts)

        return batches.map(share)

    def agree(self, what: str, values) -> None:
        """Raises on every process unless all processes hold the same `values`
        (whole numbers): hosts that disagree on where a run stands would
        train replicas that silently differ, or wait for each other forever."""
        if self.processes == 1:
            return
        from jax.experimental import multihost_utils

        mine = np.asarray(values, np.int64).reshape(-1)
        every = np.asarray(multihost_utils.process_allgather(mine)).reshape(
            self.processes, -1)
        if (every != every[0]).any():
            seen = "; ".join(f"process {i}: {row.tolist()}" for i, row in enumerate(every))
            raise TrainingError(
                f"The {self.processes} processes disagree on {what}. Expected the same "
                f"on every host. Received: {seen}. --output-dir (and --checkpoint) "
                "must be a folder that every host reads and process 0 writes: a "
                "network file system or a mounted bucket."
            )

    def barrier(self, name: str) -> None:
        """Waits until every process gets here (nothing to wait for on one)."""
        if self.processes > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(name)

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "devices": self.devices,
            "device_kind": self.device_kind,
            "processes": self.processes,
            "global_batch": self.global_batch,
            "per_device_batch": self.per_device_batch,
        }

    def describe(self) -> str:
        if self.devices == 1 and not self.distribute:
            return f"one {self.device_kind} device, batch {self.global_batch}"
        hosts = f" in {self.processes} processes" if self.processes > 1 else ""
        return (f"{self.devices} {self.device_kind} devices{hosts} ({self.strategy}), batch "
                f"{self.global_batch} = {self.devices} x {self.per_device_batch}")


def pad_evaluation(images: np.ndarray, labels: np.ndarray, multiple: int):
    """(images, labels, sample weights or None), padded to a multiple of
    `multiple` rows.

    Data parallel training needs every batch, the last one too, to split
    evenly over the devices, so an evaluation set is padded with copies of
    its first images, labelled -1 (an all-zero one-hot row, which
    `LabelledAccuracy` leaves out) and weighted 0 in the loss. The real
    images weigh padded count / real count, since Keras divides the loss by
    every row: the loss and the accuracy are those of the real images.
    """
    count = len(images)
    padded = -(-count // multiple) * multiple
    if padded == count:
        return images, labels, None
    rows = np.concatenate([np.arange(count), np.arange(padded - count) % count])
    labels = np.concatenate([labels, np.full(padded - count, -1, labels.dtype)])
    weights = np.zeros(padded, np.float32)
    weights[:count] = padded / count
    return images[rows], labels, weights


def process_rows(count: int, batch_size: int, index: int, processes: int) -> np.ndarray:
    """The rows process `index` of `processes` feeds when `count` rows go in
    batches of `batch_size` (each a multiple of the devices): its contiguous
    share of every batch, the last one too."""
    rows = []
    for start in range(0, count, batch_size):
        share = (min(start + batch_size, count) - start) // processes
        first = start + index * share
        rows.append(np.arange(first, first + share))
    return np.concatenate(rows) if rows else np.arange(0)


@keras.saving.register_keras_serializable(package="fer_keras")
class LabelledAccuracy(keras.metrics.CategoricalAccuracy):
    """Categorical accuracy over the rows that have a label.

    Rows whose one-hot label is all zeros pad an evaluation set
    (`Placement.pad_evaluation`) and count for nothing: Keras gives the
    metrics of `compile(metrics=...)` no sample weights to leave them out by.
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        labelled = keras.ops.cast(keras.ops.sum(y_true, axis=-1) > 0, self.dtype)
        if sample_weight is not None:
            labelled = labelled * keras.ops.cast(sample_weight, self.dtype)
        return super().update_state(y_true, y_pred, sample_weight=labelled)


class ProcessShare(keras.utils.PyDataset):
    """Process `index` of `count`'s contiguous share of every batch of
    `batches`, for a multi-host run (`Placement.local_batches`)."""

    def __init__(self, batches: keras.utils.PyDataset, index: int, count: int):
        super().__init__()
        self.batches, self.index, self.count = batches, int(index), int(count)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        batch = self.batches[i]
        size = len(batch[0]) // self.count
        return tuple(part[self.index * size:(self.index + 1) * size] for part in batch)

    def on_epoch_end(self) -> None:
        self.batches.on_epoch_end()


@contextlib.contextmanager
def on_this_host():
    """No distribution while the block runs: what it creates (Keras' saving
    makes a reference optimizer) lives on this host alone. Under a multi-host
    distribution every new variable is a collective, which would wait forever
    for the processes that do not run the block."""
    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)


class HostOnly(keras.callbacks.Callback):
    """Runs `callback` `on_this_host`: for the callbacks that only process 0
    of a multi-host run has, those that write the run folder."""

    def __init__(self, callback: keras.callbacks.Callback):
        super().__init__()
        self.callback = callback

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)


def _forward(hook: str):
    def forward(self, *args, **kwargs):
        with on_this_host():
            return getattr(self.callback, hook)(*args, **kwargs)

    forward.__name__ = hook
    return forward


for _hook in [f"on_{stage}_{end}" for stage in ("train", "test", "predict", "epoch",
                                                "train_batch", "test_batch", "predict_batch")
              for end in ("begin", "end")]:
    setattr(HostOnly, _hook, _forward(_hook))


@contextlib.contextmanager
def preserved_global_state():
    """Puts back the global dtype policy and distribution a run changed.

    A notebook that trains and then builds another model must not inherit the
    run's mixed precision or device layout, whether the run ended or raised.
    """
    policy = keras.config.dtype_policy()
    distribution = keras.distribution.distribution()
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)
        keras.distribution.set_distribution(distribution)
