"""Reference timing does the published scripts' work; device timing does only the steps."""

from __future__ import annotations

import math
import os
import pydoc_data.topics
import threading
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from benchd import catalog, protocol
from benchd.datasets import layout
from benchd.datasets.formats import get_format
from benchd.workloads import harness
from benchd.workloads.device import AllocatorPeaks
from benchd.workloads.training import TrainerSpec, build_trainer
from benchd.workloads.training.base import Trainer
from benchd.workloads.training.mnist_data import DevicePairs, LoadedMNIST, ReferencePairs

from .test_harness import read_events

CPU = torch.device("cpu")
PAUSE = 0.02


def _spec(data_dir: Path, workload: str, batch: int, timing: str, **overrides) -> TrainerSpec:
    dataset = get_format(catalog.get_workload(workload).dataset)
    values = {
        "workload": workload,
        "batch_size": batch,
        "options": {},
        "fraction": 1.0,
        "workers": 0,
        "seed": 3,
        "data_path": layout.dataset_path(data_dir, dataset),
        "device": CPU,
        "timing": timing,
        **overrides,
    }
    return TrainerSpec(**values)


class PhasedTrainer(Trainer):
    """Steps, side work after the first step, a validation pass and end-of-epoch work, each PAUSE long."""

    parameters = 1
    samples_per_epoch = 6
    steps_per_epoch = 3
    has_validation = True
    has_epoch_side_work = True

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _work(self, name: str) -> None:
        self.calls.append(name)
        threading.Event().wait(PAUSE)  # stands in for work of a known length, not for synchronization

    def batches(self):
        return iter([torch.ones(2)] * self.steps_per_epoch)

    def stateful(self) -> list:
        return []

    def probe_batches(self) -> list:
        return [(next(iter(self.batches())), self.steps_per_epoch)]

    def step(self, batch, index):
        self._work(f"step {index}")
        return batch.sum(), len(batch)

    def side_work_due(self, index: int) -> bool:
        return index == 0

    def side_work(self, index: int) -> None:
        self._work(f"images {index}")

    def validate(self) -> float:
        self._work("validate")
        return 1.5

    def epoch_side_work(self) -> None:
        self._work("checkpoint")


def test_epoch_phases_partition_the_timed_region() -> None:
    read_fd, write_fd = os.pipe()
    events = protocol.EventWriter(write_fd)
    trainer = PhasedTrainer()
    harness._timed_epoch(0, trainer, CPU, AllocatorPeaks(CPU), events)
    events.close()
    end = next(e for e in read_events(read_fd) if e["event"] == "epoch_end")
    assert trainer.calls == ["step 0", "images 0", "step 1", "step 2", "validate", "checkpoint"]
    phases = end["phases"]
    assert set(phases) == set(protocol.PHASES)
    assert phases["validation"] >= PAUSE
    assert phases["side_work"] >= 2 * PAUSE  # the images after step 0 and the checkpoint
    assert phases["steps"] >= 3 * PAUSE
    assert math.isclose(sum(phases.values()), end["duration"], rel_tol=1e-9)
    assert end["validation_loss"] == 1.5


def test_loaded_mnist_is_torchvisions_dataset_with_to_tensor() -> None:
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    dataset = LoadedMNIST(images, torch.arange(5))
    image, label = dataset[3]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and label == 3
    assert torch.allclose(image[0], images[3].float() / 255)


def _labels() -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(40) % 10  # four images of each class
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1).expand(40, 28, 28).contiguous()
    return images, labels


def test_reference_pairs_never_pair_an_image_with_itself() -> None:
    images, labels = _labels()
    pairs = ReferencePairs(images, labels)
    for index in range(400):
        first, second, target = pairs[index]
        first_id, second_id = int(first[0, 0, 0]), int(second[0, 0, 0])  # each image's pixels are its index
        assert first.shape == (1, 28, 28) and first.dtype == torch.float32
        if index % 2 == 0:
            assert target == 1 and first_id != second_id and labels[first_id] == labels[second_id]
        else:
            assert target == 0 and labels[first_id] != labels[second_id]


def test_device_pairs_follow_the_same_rule() -> None:
    images, labels = _labels()
    pairs = DevicePairs(images, labels, CPU, seed=0)
    for _ in range(20):
        first, second, target = pairs.batch(torch.arange(40))
        first_id, second_id = first[:, 0, 0, 0].long(), second[:, 0, 0, 0].long()
        same = target == 1
        assert torch.equal(same, torch.arange(40) % 2 == 0)
        assert torch.all(first_id[same] != second_id[same])
        assert torch.all((labels[first_id] == labels[second_id]) == same)


def test_pairs_need_two_images_of_every_class() -> None:
    with pytest.raises(ValueError, match="at least two images"):
        ReferencePairs(torch.zeros(10, 28, 28, dtype=torch.uint8), torch.arange(10))


@pytest.mark.parametrize(
    ("workload", "timing", "dataset_type", "workers"),
    [
        ("vae", "reference", LoadedMNIST, 1),
        ("siamese", "reference", ReferencePairs, 1),
        ("vae", "device", None, 0),
        ("siamese", "device", None, 0),
    ],
)
def test_each_timing_builds_its_own_data_path(
    small_data_dir: Path, workload: str, timing: str, dataset_type: type | None, workers: int
) -> None:
    trainer = build_trainer(_spec(small_data_dir, workload, 32, timing, workers=1))
    batches = trainer.batches()
    assert trainer.timed_workers == workers
    if dataset_type is None:
        assert not isinstance(batches, DataLoader)
    else:
        assert isinstance(batches, DataLoader) and isinstance(batches.dataset, dataset_type)
    assert sum(1 for _ in batches) == trainer.steps_per_epoch


def test_reference_siamese_walks_the_data_in_order_off_cuda(small_data_dir: Path) -> None:
    """The published script set shuffle=True only among its CUDA loader options."""
    trainer = build_trainer(_spec(small_data_dir, "siamese", 8, "reference", fraction=0.1))
    _first, _second, targets = next(iter(trainer.batches()))
    assert targets.tolist() == [1.0, 0.0] * 4  # indices 0..7 in order: even positive, odd negative


def test_reference_logs_the_scripts_lines_and_device_timing_reads_nothing(
    small_data_dir: Path, tmp_path: Path
) -> None:
    logs = {}
    for timing in catalog.TIMINGS:
        log_path = tmp_path / f"{timing}.log"
        with open(log_path, "w") as log:
            trainer = build_trainer(_spec(small_data_dir, "vae", 32, timing, fraction=0.5, log=log))
            for index, batch in enumerate(trainer.batches()):
                trainer.step(batch, index)
        logs[timing] = log_path.read_text().splitlines()
    assert logs["device"] == []
    assert len(logs["reference"]) == math.ceil(trainer.steps_per_epoch / 10)  # a line every tenth step
    assert logs["reference"][0].startswith("Train step 0: loss ")


def test_reference_dcgan_writes_images_and_checkpoints_in_the_scratch_directory(
    small_data_dir: Path, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    log = tmp_path / "run.log"
    read_fd, write_fd = os.pipe()
    events = protocol.EventWriter(write_fd)
    with open(log, "w") as stream:
        spec = _spec(small_data_dir, "dcgan", 8, "reference", fraction=0.02, scratch_dir=scratch, log=stream)
        trainer = build_trainer(spec)
        assert trainer.has_epoch_side_work and not trainer.has_validation
        harness._timed_epoch(0, trainer, CPU, AllocatorPeaks(CPU), events)
    events.close()
    end = next(e for e in read_events(read_fd) if e["event"] == "epoch_end")
    assert log.read_text().count("Loss_D:") == trainer.steps_per_epoch  # a line every step
    assert sorted(p.name for p in scratch.iterdir()) == [
        "fake_samples_epoch_000.png", "netD_epoch_0.pth", "netG_epoch_0.pth", "real_samples.png",
    ]  # fmt: skip
    assert end["phases"]["side_work"] > 0
    device_trainer = build_trainer(
        _spec(small_data_dir, "dcgan", 8, "device", fraction=0.02, scratch_dir=scratch)
    )
    assert not device_trainer.has_epoch_side_work and not device_trainer.side_work_due(0)
    assert device_trainer.samples_per_epoch == trainer.samples_per_epoch


def test_reference_dcgan_in_the_harness_with_workers(small_data_dir: Path, tmp_path: Path) -> None:
    """Two forked DataLoader workers read the LMDB the harness has already opened; the scratch goes."""
    scratch = tmp_path / "run-1.scratch"
    read_fd, write_fd = os.pipe()
    dcgan = catalog.get_workload("dcgan")
    config = catalog.build_config(dcgan, dcgan.preset("bs64"), batch_size=8, fraction=0.02)
    spec = protocol.RunSpec(config, "cpu", small_data_dir, scratch).to_json()
    assert harness.guarded(harness.run_workload, spec, protocol.EventWriter(write_fd)) == 0
    os.close(write_fd)
    events = read_events(read_fd)
    started = next(e for e in events if e["event"] == "started")
    assert started["timing"] == "reference" and started["workers"] == 2  # as published, off macOS
    assert [e["event"] for e in events if e["event"] != "progress"][-1] == "finished"
    assert not scratch.exists()


def test_reference_transformer_validates_inside_the_epoch_and_anneals(small_data_dir: Path) -> None:
    options = {"emsize": 16, "nlayers": 1, "nhid": 16}
    trainer = build_trainer(
        _spec(small_data_dir, "transformer", 4, "reference", fraction=0.05, options=options)
    )
    device_trainer = build_trainer(
        _spec(small_data_dir, "transformer", 4, "device", fraction=0.05, options=options)
    )
    assert trainer.has_validation and not device_trainer.has_validation
    first = trainer.validate()
    assert math.isfinite(first)
    trainer.end_epoch()
    assert trainer.lr == 20.0  # the first validation is the best so far
    trainer.last_validation = first + 1.0
    trainer.end_epoch()
    assert trainer.lr == 5.0  # no improvement: divided by four, as the example did


def _english_corpus(directory: Path) -> int:
    """Python's own documentation as a small WikiText-style corpus: real English, not i.i.d. tokens."""
    topics = sorted(pydoc_data.topics.topics.items())
    lines = [line.strip() for _name, text in topics for line in text.splitlines() if line.strip()]
    cut = len(lines) * 9 // 10
    directory.mkdir()
    (directory / "train.txt").write_text("\n".join(lines[:cut]) + "\n")
    (directory / "valid.txt").write_text("\n".join(lines[cut:]) + "\n")
    (directory / "test.txt").write_text("\n".join(lines[cut:]) + "\n")
    return len({word for line in lines for word in line.split()}) + 1  # and <eos>


@pytest.mark.slow
def test_transformer_at_lr_20_learns_english(tmp_path: Path) -> None:
    """With no LayerNorm after the stack, the b20-e200 model falls well below a uniform guess."""
    vocab = _english_corpus(tmp_path / "text")
    torch.manual_seed(1)
    preset = catalog.get_workload("transformer").preset("b20-e200-l2-h200")
    spec = TrainerSpec("transformer", 20, preset.options, 1.0, 0, 1, tmp_path / "text", CPU, timing="device")
    trainer = build_trainer(spec)
    assert trainer.vocab == vocab
    epochs = []
    for _epoch in range(3):
        epochs.append([trainer.step(batch, index)[0].item() for index, batch in enumerate(trainer.batches())])
    assert sum(len(losses) for losses in epochs) >= 250
    assert all(math.isfinite(v) for losses in epochs for v in losses)
    uniform = math.log(vocab)  # the loss of guessing every word alike
    first, last = (sum(losses[:30]) / 30 for losses in (epochs[0], epochs[-1]))
    assert first > uniform  # it starts worse than a uniform guess ...
    # ... and ends below it; with a LayerNorm after the stack it stays far above (about 15-20 here).
    assert sum(epochs[-1]) / len(epochs[-1]) < uniform, (first, last, uniform)
