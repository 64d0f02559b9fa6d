"""WikiText-2 as plain text (train.txt, valid.txt, test.txt), and a synthetic twin.

Tokenization is the reference rule: split each line on whitespace and append
`<eos>`; one dictionary is built over the three files in the order train,
valid, test, with ids given in order of first appearance.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchd.datasets import facts
from benchd.datasets.layout import DatasetError, ProgressCallback
from benchd.datasets.sources import RemoteFile, Source, extract_zip, unpack_limit

NAME = "wikitext-2"
RELATIVE_PATH = "wikitext-2"
SPLITS = ("train", "valid", "test")
EOS = "<eos>"

# Lines per split in the published files (each adds one <eos>); blank lines included.
_REAL_LINES = {"train": 36_718, "valid": 3_760, "test": 4_358}
_REAL_TOKENS = {
    "train": facts.WIKITEXT2_TRAIN_TOKENS,
    "valid": facts.WIKITEXT2_VALID_TOKENS,
    "test": facts.WIKITEXT2_TEST_TOKENS,
}


@dataclass(frozen=True)
class Corpus:
    """Token ids per split and the shared vocabulary (id -> word)."""

    words: list[str]
    ids: dict[str, np.ndarray]


def split_path(directory: Path, split: str) -> Path:
    path = directory / f"{split}.txt"
    if not path.is_file():
        raise DatasetError(path, "missing")
    return path


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"unreadable as UTF-8 text ({exc})") from None


def tokenize(directory: Path) -> Corpus:
    index: dict[str, int] = {}
    words: list[str] = []
    ids: dict[str, np.ndarray] = {}
    for split in SPLITS:
        path = split_path(directory, split)
        tokens: list[int] = []
        for line in _read_lines(path):
            for word in [*line.split(), EOS]:
                token = index.get(word)
                if token is None:
                    token = index[word] = len(words)
                    words.append(word)
                tokens.append(token)
        if len(tokens) < 2:
            raise DatasetError(path, "fewer than two tokens")
        ids[split] = np.asarray(tokens, dtype=np.int64)
    return Corpus(words, ids)


def count_samples(path: Path) -> int:
    """Training tokens; only checks that the files exist and are non-empty (tokenizing is slow)."""
    for split in SPLITS:
        if split_path(path, split).stat().st_size == 0:
            raise DatasetError(split_path(path, split), "empty")
    with open(split_path(path, "train"), "rb") as handle:
        return sum(len(line.split()) + 1 for line in handle)


def _make_words(count: int) -> list[str]:
    """`count` distinct pronounceable words, shortest first (frequent words are short)."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"][:40]
    words = ["<unk>", "the", ",", ".", "of", "and", "in", "to", "a", "="]
    length = 1
    while len(words) < count:
        for number in range(len(syllables) ** length):
            digits = []
            rest = number
            for _ in range(length):
                rest, digit = divmod(rest, len(syllables))
                digits.append(syllables[digit])
            words.append("".join(digits))
            if len(words) == count:
                break
        length += 1
    return words[:count]


def _line_lengths(words: int, lines: int, rng: np.random.Generator) -> np.ndarray:
    """Words per line summing exactly to `words`; about a third of lines blank, as in the real files."""
    blank = rng.random(lines) < 0.33
    blank[0] = False
    weights = np.where(blank, 0.0, 1.0)
    return rng.multinomial(words, weights / weights.sum())


def synthesize(scale: float, seed: int) -> dict[str, list[str]]:
    """Lines per split whose tokenization gives the real token counts and vocabulary, scaled."""
    rng = np.random.default_rng(seed)
    vocab = max(16, round(facts.WIKITEXT2_VOCAB * scale))
    words = _make_words(vocab - 1)  # <eos> completes the vocabulary
    ranks = np.arange(1, len(words) + 1, dtype=float)
    zipf = 1.0 / (ranks + 2.7)
    zipf /= zipf.sum()
    lines = {s: max(1, round(_REAL_LINES[s] * scale)) for s in SPLITS}
    word_ids = {}
    for split in SPLITS:
        tokens = max(lines[split] + 1, round(_REAL_TOKENS[split] * scale))
        word_ids[split] = rng.choice(len(words), size=tokens - lines[split], p=zipf)
    _cover_vocabulary(word_ids, len(words), rng)
    text = {}
    for split in SPLITS:
        bounds = np.cumsum(_line_lengths(len(word_ids[split]), lines[split], rng))
        starts = np.concatenate([[0], bounds[:-1]])
        text[split] = [
            " " + " ".join(words[i] for i in word_ids[split][a:b]) + " " if b > a else " "
            for a, b in zip(starts, bounds, strict=True)
        ]
    return text


def _cover_vocabulary(word_ids: dict[str, np.ndarray], vocab: int, rng: np.random.Generator) -> None:
    """Make every word appear: unused ones replace occurrences of the ten most frequent words."""
    counts = sum(np.bincount(ids, minlength=vocab) for ids in word_ids.values())
    missing = np.flatnonzero(counts == 0)
    if not len(missing):
        return
    train = word_ids["train"]
    frequent = np.argsort(counts)[::-1][:10]
    slots = np.flatnonzero(np.isin(train, frequent))
    if len(slots) < len(missing) + 10 * 10:
        raise ValueError("synthetic corpus too small to cover its vocabulary")
    train[rng.choice(slots, size=len(missing), replace=False)] = missing


def estimate_bytes(scale: float) -> int:
    tokens = sum(_REAL_TOKENS.values()) * scale
    return int(tokens * 7)


def generate(path: Path, scale: float, seed: int, progress: ProgressCallback) -> None:
    text = synthesize(scale, seed)
    for done, split in enumerate(SPLITS, start=1):
        (path / f"{split}.txt").write_text("\n".join(text[split]) + "\n", encoding="utf8")
        progress(done, len(SPLITS))


# -- the published download ---------------------------------------------------

# The archive's SHA-256 is the one Julia's DataDeps registry records.
SOURCE = Source(
    ("https://s3.amazonaws.com/research.metamind.io/wikitext",),
    (
        RemoteFile(
            "wikitext-2-v1.zip",
            ("sha256", "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c"),
            20 << 20,
        ),
    ),
)
REAL_COUNTS = {
    "train": facts.WIKITEXT2_TRAIN_TOKENS,
    "valid": facts.WIKITEXT2_VALID_TOKENS,
    "test": facts.WIKITEXT2_TEST_TOKENS,
    "vocab": facts.WIKITEXT2_VOCAB,
}
PUBLISHED_NAMES = {
    "wiki.train.tokens": "train.txt",
    "wiki.valid.tokens": "valid.txt",
    "wiki.test.tokens": "test.txt",
}


def assemble(downloads: list[Path], staging: Path) -> None:
    """The archive's three token files, renamed to train.txt, valid.txt and test.txt."""
    extract_zip(downloads[0], staging, lambda member: PUBLISHED_NAMES.get(Path(member).name),
                unpack_limit(estimate_bytes(1.0)))  # fmt: skip


def stage_import(source: Path, staging: Path) -> bool:
    """The published archive, or a folder of its wiki.*.tokens files, is renamed into place."""
    if source.is_file() and zipfile.is_zipfile(source):
        assemble([source], staging)
        return True
    if source.is_dir() and (source / "wiki.train.tokens").exists():
        for member, renamed in PUBLISHED_NAMES.items():
            shutil.copyfile(source / member, staging / renamed)
        return True
    return False


def counts(path: Path) -> dict[str, int]:
    corpus = tokenize(path)
    return {**{split: len(ids) for split, ids in corpus.ids.items()}, "vocab": len(corpus.words)}


def synthetic_counts(scale: float) -> dict[str, int] | None:
    """A full-size twin matches the real counts exactly; a smaller one is not checked by count."""
    return REAL_COUNTS if scale == 1.0 else None
