"""A GPT-2-style decoder on WikiText-2's words: the shape of the models 2026 fleets train.

Not part of the published comparison (it ran none like it), so the suites
that stand beside that table (`standard-v1`) leave it out; `standard-v2`
runs its small preset. Preset names read batch, width, layers (and as many
heads) and context: `b8-d768-l12-s1024` is GPT-2 small's body on a
33,278-word vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from benchd.catalog import CatalogError, Option, Preset, SuiteEntry, Workload
from benchd.catalog.counting import affine_norm, linear
from benchd.datasets import facts

MLP_RATIO = 4  # the feed-forward layer is four times the width, as in GPT-2


def block_matmul_parameters(width: int) -> int:
    """Weights of one block's four Linear layers (query-key-value, output, MLP in and out), biases apart."""
    return 3 * width * width + width * width + 2 * MLP_RATIO * width * width


def model_parameters(vocab: int, width: int, layers: int, context: int) -> int:
    """Token and position embeddings, the blocks, the final LayerNorm; the output layer is the token
    embedding (tied), so it adds nothing."""
    block = (
        2 * affine_norm(width)
        + linear(width, 3 * width)
        + linear(width, width)
        + linear(width, MLP_RATIO * width)
        + linear(MLP_RATIO * width, width)
    )
    return vocab * width + context * width + layers * block + affine_norm(width)


def parameters(options: Mapping[str, int], vocab: int) -> int:
    return model_parameters(vocab, options["width"], options["layers"], options["context"])


def training_flops_per_token(options: Mapping[str, int], vocab: int = facts.WIKITEXT2_VOCAB) -> int:
    """6 x the matmul weights a token meets (the blocks' and the tied output layer's) for the forward and
    backward passes, plus the attention scores and their weighting over the whole context: 12 x layers x
    context x width (PaLM's appendix B). Causal masking is not subtracted: the kernels compute it."""
    width, layers, context = options["width"], options["layers"], options["context"]
    matmul = layers * block_matmul_parameters(width) + vocab * width
    return 6 * matmul + 12 * layers * context * width


def _check(options: Mapping[str, int]) -> None:
    if options["width"] % options["heads"]:
        raise CatalogError(
            f"width {options['width']} does not split into {options['heads']} heads evenly", "options.heads"
        )


def _preset(batch: int, width: int, layers: int, context: int) -> Preset:
    options = MappingProxyType({"width": width, "layers": layers, "heads": layers, "context": context})
    return Preset(f"b{batch}-d{width}-l{layers}-s{context}", batch, options)


SMALL = _preset(16, 384, 6, 256)

WORKLOAD = Workload(
    name="gpt",
    title="GPT-2-style decoder on WikiText-2",
    data=facts.WIKITEXT2,
    sample_unit="tokens",
    presets=(_preset(8, 768, 12, 1024), SMALL),
    parameter_formula=parameters,
    trainer="benchd.workloads.gpt.trainer:GptTrainer",
    options=(
        Option("width", "Model width (embedding size).", 8, 1 << 14, short="d"),
        Option("layers", "Decoder blocks.", 1, 256, short="l"),
        Option("heads", "Attention heads per block (they split the width).", 1, 256),
        Option("context", "Tokens per sequence (the position table's length).", 8, 1 << 14, short="s"),
    ),
    check_options=_check,
    samples_per_item="context",
    schedule=None,  # not in standard-v1, the default schedule's suite
    suites={"standard-v2": SuiteEntry((SMALL.name,), 0.01, 2)},
)
