"""Windows: how the pooling family turns an input into the windows it summarises.

Any number of spatial axes (1D, 2D, 3D), either data format. Three *views* let a function of
the windows (the p-norm in `_pnorm`) be written once:

- `BlockWindows`: non-overlapping windows that tile the map (``strides == pool_size``); means
  and maxima come from the backend's pooling ops and the broadcast of one value per window
  over its cells is a reshape.
- `GlobalWindows`: the whole spatial map is one window.
- `PatchWindows`: any other geometry (overlapping windows, ``"same"`` padding that adds
  cells): the windows gathered on a leading cell axis by `gather`.

`gather` collects the windows without a convolution and without strided slices (whose
gradient is slow on TensorFlow; that of a plain slice is a pad): the input is padded (or
cropped) to a whole number of strides, reshaped so that every stride phase is an axis of its
own and transposed once so that the phases lead. Cell ``a`` of a window then lies in phase
``a mod s`` at offset ``a // s`` along each axis: for non-overlapping windows the transposed
tensor is the window stack itself, overlapping windows take one unit-stride slice per offset.
`pad_same` pads as ``"same"`` pooling pads, and `window_counts` counts the real (not padded)
cells of every window.
"""

import itertools
import math

from keras import ops

from kerascnn.layers import _args


def spatial_shape(x, data_format, rank):
    """The spatial sizes of `x` (Python ints where static, tensors where not)."""
    shape = ops.shape(x)
    return [shape[axis] for axis in _args.spatial_axes(rank, data_format)]


def pad_or_crop(x, before, after, data_format):
    """Zero-pads the spatial axes of `x` by `before` / `after` cells (a negative `after`
    crops). The amounts may be symbolic."""
    sizes = spatial_shape(x, data_format, len(before))
    static = all(isinstance(v, int) for v in (*before, *after))
    widths = [
        (b, max(a, 0) if static else ops.maximum(a, 0)) for b, a in zip(before, after, strict=True)
    ]
    if not static or any(b or a for b, a in widths):
        none = [(0, 0)]
        widths = [*none, *widths, *none] if data_format == "channels_last" else [*none * 2, *widths]
        x = ops.pad(x, widths)
    if not static or any(a < 0 for a in after):
        ends = [b + size + a for b, size, a in zip(before, sizes, after, strict=True)]
        index = [slice(None), *(slice(0, end) for end in ends)]
        index = [*index, slice(None)] if data_format == "channels_last" else [index[0], *index]
        x = x[tuple(index)]
    return x


def pad_same(x, pool_size, strides, data_format):
    """`x` zero-padded as ``"same"`` pooling pads it (the smaller half before)."""
    sizes = spatial_shape(x, data_format, len(pool_size))
    pads = [
        _args.same_padding(*geometry) for geometry in zip(sizes, pool_size, strides, strict=True)
    ]
    return pad_or_crop(x, *zip(*pads, strict=True), data_format) if pads else x


def window_counts(sizes, pool_size, strides, data_format, dtype):
    """The number of real cells in every ``"same"`` window, shaped to broadcast against the
    pooled output; a Python int where no window reaches past the border."""
    counts, total = [], math.prod(pool_size)
    for size, k, s in zip(sizes, pool_size, strides, strict=True):
        before, after = _args.same_padding(size, k, s)
        if isinstance(before, int) and isinstance(after, int) and not before and not after:
            counts.append(None)
            continue
        out = _args.output_length(size, k, s, "same")
        starts = ops.arange(out) * s - before
        counts.append(ops.minimum(starts + k, size) - ops.maximum(starts, 0))
    if all(count is None for count in counts):
        return total
    rank = len(pool_size)
    offset = 1 if data_format == "channels_last" else 2
    result = 1
    for axis, (count, k) in enumerate(zip(counts, pool_size, strict=True)):
        if count is None:
            count = ops.convert_to_tensor(k)
        shape = [1] * (rank + 2)
        shape[offset + axis] = -1
        result = result * ops.reshape(ops.cast(count, dtype), shape)
    return result


def gather(x, pool_size, strides, padding, data_format, channels_lead=False):
    """The windows of `x` on a leading cell axis, and the order of their cells.

    Returns ``(windows, order)``. `windows` has the shape of the pooled output with a cell
    axis in front (``(cells, batch, *out, channels)`` for channels_last); with
    `channels_lead` the channels come first, ``(channels, cells, batch, *out)``. Padded cells
    are zeros. The cells come grouped by phase: ``order[i]`` is the row-major index of the
    window cell in position ``i``.
    """
    rank = len(pool_size)
    channels_last = data_format == "channels_last"
    sizes = spatial_shape(x, data_format, rank)
    outs, phases, before, after = [], [], [], []
    for size, k, s in zip(sizes, pool_size, strides, strict=True):
        out = _args.output_length(size, k, s, padding)
        start = _args.same_padding(size, k, s)[0] if padding == "same" else 0
        outs.append(out)
        phases.append(out + (k - 1) // s)
        before.append(start)
        after.append(s * phases[-1] - start - size)
    x = pad_or_crop(x, before, after, data_format)
    channels = ops.shape(x)[-1 if channels_last else 1]
    spatial = [dim for q, s in zip(phases, strides, strict=True) for dim in (q, s)]
    names = [name for axis in range(rank) for name in (("q", axis), ("s", axis))]
    if channels_last:
        source = ["B", *names, "C"]
        x = ops.reshape(x, (-1, *spatial, channels))
    else:
        source = ["B", "C", *names]
        x = ops.reshape(x, (-1, channels, *spatial))
    rest = [name for name in source if name[0] != "s"]
    steps = [("s", axis) for axis in range(rank)]
    target = ["C", *steps, *(n for n in rest if n != "C")] if channels_lead else [*steps, *rest]
    x = ops.transpose(x, [source.index(name) for name in target])
    sizes = {"B": -1, "C": channels, **{("q", axis): out for axis, out in enumerate(outs)}}
    layout = [sizes[name] for name in target if name[0] != "s"]
    cell_axis = 1 if channels_lead else 0

    def cells_on_one_axis(part, count):
        shape = [count, *layout]
        if channels_lead:
            shape = [layout[0], count, *layout[1:]]
        return ops.reshape(part, shape)

    if tuple(pool_size) == tuple(strides):  # every window is one cell of each phase
        return cells_on_one_axis(x, math.prod(pool_size)), tuple(range(math.prod(pool_size)))
    # Every unsliced axis (batch, channels) joins the axis before it: the slices stay
    # contiguous and the tensor keeps at most five axes (TFLite slices up to 5D).
    groups = []
    for name in target:
        if name in ("B", "C") and groups:
            groups[-1].append(name)
        else:
            groups.append([name])
    full = dict(zip(target, ops.shape(x), strict=True))
    x = ops.reshape(
        x, [-1 if "B" in group else math.prod(full[n] for n in group) for group in groups]
    )
    merged = ops.shape(x)
    parts, order = [], []
    offsets = [range((k - 1) // s + 1) for k, s in zip(pool_size, strides, strict=True)]
    for offset in itertools.product(*offsets):
        taken = [min(s, k - o * s) for o, k, s in zip(offset, pool_size, strides, strict=True)]
        start = {("q", axis): o for axis, o in enumerate(offset)}
        size = {("s", axis): n for axis, n in enumerate(taken)}
        size.update({("q", axis): out for axis, out in enumerate(outs)})
        inner = [merged[i] // full[group[0]] for i, group in enumerate(groups)]
        part = ops.slice(
            x,
            [start.get(group[0], 0) * inner[i] for i, group in enumerate(groups)],
            [size.get(group[0], full[group[0]]) * inner[i] for i, group in enumerate(groups)],
        )
        parts.append(cells_on_one_axis(part, math.prod(taken)))
        for cell in itertools.product(*(range(n) for n in taken)):
            index = 0
            for o, c, k, s in zip(offset, cell, pool_size, strides, strict=True):
                index = index * k + o * s + c
            order.append(index)
    windows = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=cell_axis)
    return windows, tuple(order)


class BlockWindows:
    """Non-overlapping windows that tile a map exactly (the map was cropped beforehand)."""

    def __init__(self, pool_size, data_format, spatial):
        self.pool_size = tuple(pool_size)
        self.data_format = data_format
        self.spatial = tuple(spatial)
        self.count = math.prod(pool_size)

    def mean(self, v):
        return ops.average_pool(v, self.pool_size, self.pool_size, "valid", self.data_format)

    def max(self, v):
        return ops.max_pool(v, self.pool_size, self.pool_size, "valid", self.data_format)

    def spread(self, v, w):
        """``v`` (input resolution) times ``w`` (one value per window) broadcast over windows.

        The batch (and the channels, when first) join the first output axis, and `w` is
        repeated along the spatial axes past the second, so that no tensor has more than five
        axes (the most that TensorFlow broadcasts and TFLite's delegates take).
        """
        channels_last = self.data_format == "channels_last"
        first = 1 if channels_last else 2
        split, ones = [], []
        for axis, (size, k) in enumerate(zip(self.spatial, self.pool_size, strict=True)):
            if axis >= 2:
                w = ops.repeat(w, k, axis=first + axis)
                split.append(size)
                ones.append(size)
            else:
                split += [size // k, k] if axis else [k]
                ones += [size // k, 1] if axis else [1]
        channels = ops.shape(v)[-1 if channels_last else 1]
        tail = [channels] if channels_last else []
        product = ops.reshape(v, (-1, *split, *tail)) * ops.reshape(w, (-1, *ones, *tail))
        if channels_last:
            return ops.reshape(product, (-1, *self.spatial, channels))
        return ops.reshape(product, (-1, channels, *self.spatial))


class GlobalWindows:
    """The whole spatial map is one window (results keep the spatial axes, of size 1)."""

    def __init__(self, data_format, rank, spatial, dtype):
        self.axes = _args.spatial_axes(rank, data_format)
        self.count = ops.cast(math.prod(spatial), dtype)

    def mean(self, v):
        return ops.mean(v, axis=self.axes, keepdims=True)

    def max(self, v):
        return ops.max(v, axis=self.axes, keepdims=True)

    def spread(self, v, w):
        return v * w


class PatchWindows:
    """Windows gathered on axis 0 by `gather`; `count` is the number of real cells of every
    window (a number, or a tensor that broadcasts against one value per window)."""

    def __init__(self, count):
        self.count = count

    def mean(self, v):
        return ops.sum(v, axis=0) / self.count

    def max(self, v):
        return ops.max(v, axis=0)

    def spread(self, v, w):
        return v * ops.expand_dims(w, 0)


def pooling_view(x, pool_size, strides, padding, data_format, dtype):
    """``(x, windows)``: `x` in the layout its window view expects, and that view.

    Windows that tile a map of static size (strides equal to the pool size, no padding that
    adds cells) are a `BlockWindows` view of the map cropped to whole windows; any other
    geometry gathers the windows into a `PatchWindows` view.
    """
    rank = len(pool_size)
    sizes = spatial_shape(x, data_format, rank)
    static = all(isinstance(size, int) for size in sizes)
    if static and tuple(strides) == tuple(pool_size):
        if padding == "valid" or all(
            size % k == 0 for size, k in zip(sizes, pool_size, strict=True)
        ):
            cropped = [size - size % k for size, k in zip(sizes, pool_size, strict=True)]
            if cropped != sizes:
                x = pad_or_crop(
                    x, [0] * rank, [c - s for c, s in zip(cropped, sizes, strict=True)], data_format
                )
            return x, BlockWindows(pool_size, data_format, cropped)
    if padding == "same":
        count = window_counts(sizes, pool_size, strides, data_format, dtype)
    else:
        count = math.prod(pool_size)
    windows, _ = gather(x, pool_size, strides, padding, data_format)
    return windows, PatchWindows(count)
