"""Global p-norm (generalized-mean, GeM) pooling over the 3D map."""

import keras

from kerascnn.layers import _args, _base_pnorm_pooling, _pnorm_docs


@keras.saving.register_keras_serializable(package="kerascnn")
class GlobalPNormPooling3D(_base_pnorm_pooling.BaseGlobalPNormPooling):
    __doc__ = _pnorm_docs.global_pooling_doc(
        3,
        """
    >>> x = np.array([1., -2., 3., 4., 0., 0., 0., 0.]).reshape(1, 2, 2, 2, 1)
    >>> y = GlobalPNormPooling3D(p=2)(x)
    >>> round(float(y[0, 0]), 4)  # sqrt((1 + 4 + 9 + 16) / 8)
    1.9365
    >>> layer = GlobalPNormPooling3D(p=3, trainable_p=True)
    >>> tuple(layer(np.random.rand(2, 4, 7, 7, 64).astype("float32")).shape)
    (2, 64)
""",
    )

    def __init__(
        self, p=3.0, trainable_p=False, keepdims=False, data_format=None, p_lr_scale=1.0, **kwargs
    ):
        super().__init__(rank=3, **_args.passed_arguments(locals()))
