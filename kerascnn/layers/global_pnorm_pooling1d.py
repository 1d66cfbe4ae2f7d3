"""Global p-norm (generalized-mean, GeM) pooling over the 1D (temporal) map."""

import keras

from kerascnn.layers import _args, _base_pnorm_pooling, _pnorm_docs


@keras.saving.register_keras_serializable(package="kerascnn")
class GlobalPNormPooling1D(_base_pnorm_pooling.BaseGlobalPNormPooling):
    __doc__ = _pnorm_docs.global_pooling_doc(
        1,
        """
    >>> x = np.array([1., -2., 3., 4.]).reshape(1, 4, 1)
    >>> y = GlobalPNormPooling1D(p=2)(x)
    >>> round(float(y[0, 0]), 4)  # sqrt((1 + 4 + 9 + 16) / 4)
    2.7386
    >>> layer = GlobalPNormPooling1D(p=3, trainable_p=True)
    >>> tuple(layer(np.random.rand(8, 49, 512).astype("float32")).shape)
    (8, 512)
""",
    )

    def __init__(
        self, p=3.0, trainable_p=False, keepdims=False, data_format=None, p_lr_scale=1.0, **kwargs
    ):
        super().__init__(rank=1, **_args.passed_arguments(locals()))
