"""Transformer language model on WikiText-2: the five batch, embedding, depth and width configurations."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from benchd.catalog.counting import affine_norm, linear
from benchd.catalog.spec import Preset, Workload

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


WORKLOAD = Workload(
    name="transformer",
    title="Transformer language model on WikiText-2",
    dataset="wikitext-2",
    sample_unit="tokens",
    presets=(
        _preset(20, 200, 2, 200),
        _preset(20, 500, 2, 500),
        _preset(200, 500, 4, 500),
        _preset(200, 500, 6, 1024),
        _preset(200, 500, 10, 1024),
    ),
    parameter_formula=parameters,
    trainer="benchd.workloads.training.transformer:TransformerTrainer",
    option_names=("emsize", "nlayers", "nhid"),
    samples_per_item=BPTT,
)
