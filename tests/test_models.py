"""The models built exactly as docs/workloads.md describes: parameter counts, shapes, training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from benchd import catalog
from benchd.datasets import layout
from benchd.datasets.formats import get_format
from benchd.workloads.dcgan import model as dcgan
from benchd.workloads.gpt import model as gpt
from benchd.workloads.siamese import model as siamese
from benchd.workloads.training import TrainerSpec, build_trainer
from benchd.workloads.training.base import parameter_count
from benchd.workloads.transformer import model as transformer
from benchd.workloads.transformer.trainer import batchify
from benchd.workloads.vae import model as vae

from .test_catalog import GPT_PARAMETERS, PUBLISHED_PARAMETERS


def test_dcgan_modules_counts_and_shapes() -> None:
    generator, discriminator = dcgan.Generator(), dcgan.Discriminator()
    assert parameter_count(generator) == 3_576_704
    assert parameter_count(discriminator) == 2_765_568
    assert not any(isinstance(m, torch.nn.Conv2d) and m.bias is not None for m in discriminator.modules())
    images = generator(torch.randn(2, 100, 1, 1))
    assert images.shape == (2, 3, 64, 64)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images).shape == (2,)


def test_dcgan_initialisation() -> None:
    torch.manual_seed(0)
    generator = dcgan.Generator()
    generator.apply(dcgan.init_weights)
    conv = generator.main[3]
    norm = generator.main[4]
    assert abs(conv.weight.std().item() - 0.02) < 0.002
    assert abs(norm.weight.mean().item() - 1.0) < 0.01
    assert torch.all(norm.bias == 0)


def test_siamese_counts_and_shapes() -> None:
    model = siamese.SiameseNetwork()
    assert parameter_count(model) == 11_432_897
    assert model.tower[0].in_channels == 1
    out = model(torch.rand(3, 1, 28, 28) * 255, torch.rand(3, 1, 28, 28) * 255)
    assert out.shape == (3, 1)  # the trainer squeezes, as the example did
    assert torch.all((out > 0) & (out < 1))
    assert torch.all(model.head[0].bias == 0.01)


@pytest.mark.parametrize("preset", catalog.get_workload("transformer").presets, ids=lambda p: p.name)
def test_transformer_counts_for_the_real_vocabulary(preset: catalog.Preset) -> None:
    options = preset.options
    with torch.device("meta"):
        model = transformer.TransformerLM(33_278, options["emsize"], options["nlayers"], options["nhid"])
    assert parameter_count(model) == PUBLISHED_PARAMETERS[("transformer", preset.name)]


def test_transformer_shapes_and_causality() -> None:
    torch.manual_seed(0)
    model = transformer.TransformerLM(50, 16, 2, 32).eval()
    tokens = torch.randint(0, 50, (10, 3))
    mask = torch.nn.Transformer.generate_square_subsequent_mask(10)
    out = model(tokens, mask)
    assert out.shape == (10, 3, 50)
    assert torch.allclose(out.exp().sum(-1), torch.ones(10, 3), atol=1e-4)
    changed = tokens.clone()
    changed[-1] = (changed[-1] + 1) % 50
    # A later token cannot influence earlier positions.
    assert torch.allclose(model(changed, mask)[:-1], out[:-1], atol=1e-5)


def test_the_examples_mask_is_torchs_causal_mask_and_torch_finds_it_causal() -> None:
    from benchd.workloads.transformer.trainer import example_mask

    expected = torch.nn.Transformer.generate_square_subsequent_mask(7)
    assert torch.equal(example_mask(7), expected)
    model = transformer.TransformerLM(50, 16, 2, 32).eval()
    tokens = torch.randint(0, 50, (7, 3), generator=torch.Generator().manual_seed(0))
    # Without the hint torch checks the mask, finds it causal and computes what the hinted call does.
    assert torch.allclose(model(tokens, example_mask(7), None), model(tokens, expected, True), atol=1e-6)


def test_batchify_cuts_columns_and_drops_the_remainder() -> None:
    data = batchify(torch.arange(23), 4)
    assert data.shape == (5, 4)
    assert data[:, 1].tolist() == [5, 6, 7, 8, 9]


def test_step_counts_match_published_for_the_real_token_count() -> None:
    for batch, steps in ((20, 2984), (200, 299)):
        rows = 2_088_628 // batch
        assert len(range(0, rows - 1, 35)) == steps


@pytest.mark.parametrize("preset", catalog.get_workload("gpt").presets, ids=lambda p: p.name)
def test_gpt_counts_for_the_real_vocabulary(preset: catalog.Preset) -> None:
    o = preset.options
    with torch.device("meta"):
        model = gpt.GPT(33_278, o["width"], o["layers"], o["heads"], o["context"])
    assert parameter_count(model) == GPT_PARAMETERS[("gpt", preset.name)]
    assert model.head.weight is model.tokens.weight  # tied: the output layer is the token embedding
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(m.bias is not None for m in linears if m is not model.head)
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())


def test_gpt_shapes_causality_and_initialisation() -> None:
    torch.manual_seed(0)
    model = gpt.GPT(50, 32, 2, 4, 16).eval()
    tokens = torch.randint(0, 50, (3, 10))
    out = model(tokens)
    assert out.shape == (3, 10, 50)
    changed = tokens.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 50
    # A later token cannot influence earlier positions; it does change its own.
    assert torch.allclose(model(changed)[:, :-1], out[:, :-1], atol=1e-5)
    assert not torch.allclose(model(changed)[:, -1], out[:, -1])
    block = model.blocks[0]
    assert abs(block.attention.qkv.weight.std().item() - 0.02) < 0.003
    assert abs(block.attention.out.weight.std().item() - 0.02 / math.sqrt(4)) < 0.002


def test_vae_counts_and_loss() -> None:
    model = vae.VAE()
    assert parameter_count(model) == 652_824
    x = torch.rand(4, 1, 28, 28)
    recon, mu, logvar = model(x)
    assert recon.shape == (4, 784) and mu.shape == (4, 20) and logvar.shape == (4, 20)
    zero_kl = vae.loss(x.view(4, 784), x, torch.zeros(4, 20), torch.zeros(4, 20))
    expected = torch.nn.functional.binary_cross_entropy(x.view(4, 784), x.view(4, 784), reduction="sum")
    assert torch.isclose(zero_kl, expected)


@pytest.mark.parametrize("timing", catalog.TIMINGS)
@pytest.mark.parametrize(
    ("workload", "batch", "options"),
    [
        ("vae", 32, {}),
        ("siamese", 8, {}),
        ("transformer", 4, {"emsize": 32, "nlayers": 1, "nhid": 32}),
        ("dcgan", 8, {}),
        ("gpt", 4, {"width": 32, "layers": 2, "heads": 4, "context": 16}),
    ],
)
def test_a_few_training_steps_change_the_loss(
    small_data_dir: Path, workload: str, batch: int, options: dict, timing: str
) -> None:
    torch.manual_seed(0)
    dataset = catalog.get_workload(workload).dataset
    data_path = layout.dataset_path(small_data_dir, get_format(dataset))
    trainer = build_trainer(
        TrainerSpec(workload, batch, options, 1.0, 0, 0, data_path, torch.device("cpu"), timing=timing)
    )
    losses = []
    for step, data in enumerate(trainer.batches()):
        loss, count = trainer.step(data, step)
        assert count > 0
        losses.append(loss.item())
        if step == 3:
            break
    assert all(math.isfinite(v) for v in losses)
    assert len(set(losses)) > 1
