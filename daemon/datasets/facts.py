"""Published sizes of the real datasets (docs/workloads.md), shared by readers, generators and the catalog.

Kept free of imports so the parent can use them without loading numpy or torch.
"""

LSUN_CLASSROOM_IMAGES = 168_103

MNIST_TRAIN_IMAGES = 60_000
MNIST_TEST_IMAGES = 10_000
MNIST_SIDE = 28

WIKITEXT2_TRAIN_TOKENS = 2_088_628
WIKITEXT2_VALID_TOKENS = 217_646
WIKITEXT2_TEST_TOKENS = 245_569
WIKITEXT2_VOCAB = 33_278

# Training samples of each real dataset, by the dataset names the catalog uses.
TRAIN_SAMPLES = {
    "lsun-classroom": LSUN_CLASSROOM_IMAGES,
    "mnist": MNIST_TRAIN_IMAGES,
    "wikitext-2": WIKITEXT2_TRAIN_TOKENS,
}
