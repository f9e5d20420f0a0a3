"""Datasets as uint8 `(N, C, H, W)` arrays with labels and a content hash.

    from genbench.data import FASHION_MNIST, folder
    train = FASHION_MNIST.load("train")          # ImageData: .images, .labels, .content_hash, .source
    samples = folder("runs/vae/samples").load("all")

Built-in datasets are found locally (the `data_root` argument / `$GENBENCH_DATA`, then system locations, then
genbench's download folder) or downloaded with torchvision when allowed; decoded arrays are cached under
`cache_dir()/data/` and memory-mapped on later loads.
"""

from genbench.data.base import DatasetSpec, DatasetUnavailable, ImageData, cache_dir, content_hash
from genbench.data.binarized_mnist import BINARIZED_MNIST
from genbench.data.celeba import CELEBA64
from genbench.data.cifar10 import CIFAR10
from genbench.data.digits import DIGITS
from genbench.data.dsprites import DSPRITES
from genbench.data.dsprites_shapes import DSPRITES_SHAPES
from genbench.data.folder import folder
from genbench.data.idx import FASHION_MNIST, MNIST
from genbench.data.stacked import STACKED_FASHION_MNIST

BUILTIN: tuple[DatasetSpec, ...] = (
    FASHION_MNIST, MNIST, CIFAR10, CELEBA64, DIGITS, DSPRITES, DSPRITES_SHAPES, STACKED_FASHION_MNIST,
    BINARIZED_MNIST,
)

__all__ = [
    "ImageData",
    "DatasetSpec",
    "DatasetUnavailable",
    "cache_dir",
    "content_hash",
    "folder",
    "FASHION_MNIST",
    "MNIST",
    "CIFAR10",
    "CELEBA64",
    "DIGITS",
    "DSPRITES",
    "DSPRITES_SHAPES",
    "STACKED_FASHION_MNIST",
    "BINARIZED_MNIST",
    "BUILTIN",
]
