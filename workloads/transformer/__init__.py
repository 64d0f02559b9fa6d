"""Transformer language model on WikiText-2: the five batch, embedding, depth and width configurations."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from benchd.catalog import Option, Preset, SuiteEntry, Workload
from benchd.catalog.counting import affine_norm, linear
from benchd.datasets import facts

BPTT = 35  # tokens per sequence, as the example trains: one batch item is this many samples


def model_parameters(vocab: int, emsize: int, nlayers: int, nhid: int) -> int:
    attention = linear(emsize, 3 * emsize) + linear(emsize, emsize)
    feed_forward = linear(emsize, nhid) + linear(nhid, emsize)
    layer = attention + feed_forward + 2 * affine_norm(emsize)
    # No LayerNorm after the stack: the May-2022 model the comparison ran had none.
    return vocab * emsize + nlayers * layer + linear(emsize, vocab)


def parameters(options: Mapping[str, int], vocab: int) -> int:
    return model_parameters(vocab, options["emsize"], options["nlayers"], options["nhid"])


def _preset(batch: int, emsize: int, nlayers: int, nhid: int) -> Preset:
    options = MappingProxyType({"emsize": emsize, "nlayers": nlayers, "nhid": nhid})
    return Preset(f"b{batch}-e{emsize}-l{nlayers}-h{nhid}", batch, options)


# Sized so that a 2-core CPU runs it in minutes (docs/performance.md); the same in every standard suite.
STANDARD = SuiteEntry(("b20-e200-l2-h200", "b200-e500-l4-h500"), 0.05, 2)

WORKLOAD = Workload(
    name="transformer",
    title="Transformer language model on WikiText-2",
    data=facts.WIKITEXT2,
    sample_unit="tokens",
    presets=(
        _preset(20, 200, 2, 200),
        _preset(20, 500, 2, 500),
        _preset(200, 500, 4, 500),
        _preset(200, 500, 6, 1024),
        _preset(200, 500, 10, 1024),
    ),
    parameter_formula=parameters,
    trainer="benchd.workloads.transformer.trainer:TransformerTrainer",
    options=(
        Option("emsize", "Embedding size (even: two attention heads).", 2, 1 << 16, multiple_of=2, short="e"),
        Option("nlayers", "Encoder layers.", 1, 1024, short="l"),
        Option("nhid", "Feed-forward width.", 1, 1 << 20, short="h"),
    ),
    samples_per_item=BPTT,
    suites={"standard-v1": STANDARD, "standard-v2": STANDARD},
    # 1: reference epochs build and check the causal mask and update through .data as the example (2026-11).
    revision=1,
)
