"""The May-2022 examples' epochs, run in this process from a checkout, each epoch handed to the caller's
wrapper (a timer or an operation counter), for reference_parity.py.

Each example is executed from the checkout as its author wrote it; nothing of
it is stored here. What the published comparison timed differs per example
(../shared/WORKLOADS.md, "What each published time covered"), so each driver
names its epoch function:

- VAE and Siamese: the script's own `train()`;
- Transformer: `train()` then `evaluate(val_data)`, the example's own epoch
  time; its learning-rate schedule runs after, untimed, as in the script;
- DCGAN: the body of its epoch loop, checkpoints included, made into a
  function from the script's own lines (the loop is at module level).

The scripts that run their epochs at module level (the transformer and
DCGAN) are executed up to that loop only, and the driver runs the epochs.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]
MNIST_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)  # fmt: skip
SEED = 1  # benchd's default seed, given to the examples that take one


@dataclass(frozen=True)
class Case:
    """One workload beside its example: benchd's preset and the example's folder and arguments."""

    workload: str
    preset: str
    batch_size: int
    folder: str
    dataset: str  # benchd's dataset module (benchd.datasets.NAME)
    arguments: tuple[str, ...] = ()

    def script(self, examples: Path) -> Path:
        return examples / self.folder / "main.py"


CASES: tuple[Case, ...] = (
    Case("vae", "bs128", 128, "vae", "mnist"),
    Case("siamese", "bs64", 64, "siamese_network", "mnist"),
    Case("transformer", "b20-e200-l2-h200", 20, "word_language_model", "wikitext",
         ("--model", "Transformer", "--emsize", "200", "--nlayers", "2", "--nhid", "200",
          "--batch_size", "20", "--lr", "20", "--seed", str(SEED))),
    Case("dcgan", "bs64", 64, "dcgan", "lsun",
         ("--dataset", "lsun", "--classes", "classroom", "--batchSize", "64", "--outf", "out",
          "--manualSeed", str(SEED))),
)  # fmt: skip


def stage(case: Case, dataset_path: Path, workdir: Path, workers: int | None) -> list[str]:
    """Put benchd's files where the example looks for them; the example's data and worker arguments."""
    if case.dataset == "mnist":  # `../data/MNIST/raw`, uncompressed, so nothing downloads
        raw = workdir.parent / "data" / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for name in MNIST_FILES:
            plain, packed = dataset_path / name, dataset_path / f"{name}.gz"
            if plain.is_file():
                shutil.copyfile(plain, raw / name)
            else:
                with gzip.open(packed, "rb") as source, open(raw / name, "wb") as target:
                    shutil.copyfileobj(source, target)
        return []
    if case.dataset == "wikitext":
        return ["--data", str(dataset_path)]
    # LSUN: the root holding `classroom_train_lmdb` (torchvision's key cache goes to the working folder),
    # and DCGAN's loader workers: the script's default, 2, unless told.
    return ["--dataroot", str(dataset_path.parent), "--workers", str(2 if workers is None else workers)]


def _load(script: Path, arguments: list[str], stop_before: str | None = None) -> dict[str, Any]:
    """The script executed as a module that is not __main__, up to the line `stop_before` if given."""
    sys.argv = [str(script), *arguments]
    source = script.read_text()
    if stop_before is not None:
        source = source[: _line_start(source, stop_before, script)]
    namespace: dict[str, Any] = {"__name__": "reference_example", "__file__": str(script)}
    sys.path.insert(0, str(script.parent))  # its sibling modules (data.py, model.py)
    exec(compile(source, str(script), "exec"), namespace)
    return namespace


def _line_start(source: str, line: str, script: Path) -> int:
    at = source.find("\n" + line) + 1
    if at == 0:
        raise RuntimeError(f"{script} has no line {line!r}: not the May-2022 example")
    return at


def _epoch_loop_body(script: Path, loop: str, namespace: dict[str, Any]) -> Callable[[int], None]:
    """The lines inside the module-level `loop` (`for epoch in ...:`), as a function of `epoch` whose
    globals are the script's."""
    source = script.read_text()
    body = source[_line_start(source, loop, script) + len(loop) :].splitlines()
    kept = []
    for text in body:
        if text.strip() and not text.startswith(" "):
            break  # back at module level: the loop has ended
        kept.append(text)
    code = "def example_epoch(epoch):\n" + "\n".join(kept) + "\n"
    exec(compile(code, str(script), "exec"), namespace)
    return namespace["example_epoch"]


def drive(case: Case, script: Path, arguments: list[str], epochs: int, samples: int | None,
          wrap: Wrap) -> None:  # fmt: skip
    """Run `epochs` of the example, its epoch function wrapped; `samples` cuts the Siamese epoch."""
    import torch

    torch.set_num_threads(1)
    given = [*case.arguments, *arguments]
    if case.workload == "vae":  # its loaders are module-level; its main block is train and test per epoch
        namespace = _load(script, [*given, "--epochs", str(epochs)])
        namespace["train"] = train = wrap(namespace["train"])
        for epoch in range(1, epochs + 1):
            train(epoch)
    elif case.workload == "siamese":  # main() builds everything, then trains and tests each epoch
        namespace = _load(script, [*given, "--epochs", str(epochs)])
        namespace["train"] = wrap(namespace["train"])
        if samples is not None:
            namespace["APP_MATCHER"].__len__ = lambda self: samples if self.dataset.train else len(self.data)
        namespace["test"] = lambda *args, **kwargs: None  # outside the published timer; skipped for time
        namespace["main"]()
    elif case.workload == "transformer":
        namespace = _load(script, [*given, "--epochs", str(epochs)], stop_before="lr = args.lr")
        _transformer_epochs(namespace, epochs, wrap)
    else:
        namespace = _load(
            script, [*given, "--niter", str(epochs)], stop_before="for epoch in range(opt.niter):"
        )
        example_epoch = wrap(_epoch_loop_body(script, "for epoch in range(opt.niter):", namespace))
        for epoch in range(epochs):
            example_epoch(epoch)


def _transformer_epochs(namespace: dict[str, Any], epochs: int, wrap: Wrap) -> None:
    """The script's epoch loop: train and validate (the epoch), then keep or anneal the learning rate."""

    def example_epoch() -> float:
        namespace["train"]()
        return namespace["evaluate"](namespace["val_data"])

    timed = wrap(example_epoch)
    namespace["lr"] = namespace["args"].lr
    best = None
    for epoch in range(1, epochs + 1):
        namespace["epoch"] = epoch  # its log line reads the global
        validation = timed()
        if best is None or validation < best:
            best = validation
        else:
            namespace["lr"] /= 4.0
