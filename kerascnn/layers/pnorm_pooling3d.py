"""P-norm (Lp) pooling over 3D windows, with a fixed or learned p."""

import keras

from kerascnn.layers import _args, _base_pnorm_pooling, _pnorm_docs


@keras.saving.register_keras_serializable(package="kerascnn")
class PNormPooling3D(_base_pnorm_pooling.BasePNormPooling):
    __doc__ = _pnorm_docs.pooling_doc(
        3,
        """
    >>> x = np.array([1., -2., 3., 4., 0., 0., 0., 0.]).reshape(1, 2, 2, 2, 1)
    >>> y = PNormPooling3D(pool_size=2, p=2)(x)
    >>> round(float(y[0, 0, 0, 0, 0]), 4)  # sqrt((1 + 4 + 9 + 16) / 8)
    1.9365
    >>> layer = PNormPooling3D(pool_size=2, p=3, trainable_p=True)
    >>> tuple(layer(np.random.rand(2, 8, 16, 16, 4).astype("float32")).shape)
    (2, 4, 8, 8, 4)
""",
    )

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", p=2.0, trainable_p=False,
                 reduction="mean", data_format=None, p_lr_scale=1.0, **kwargs):
        super().__init__(rank=3, **_args.passed_arguments(locals()))
