"""CLIP's tokenizer files (vocab.json + merges.txt, Hugging Face's layout) derived from the BPE
merge list that open_clip ships (bpe_simple_vocab_16e6.txt.gz, MIT, the file OpenAI's CLIP
repo published), the way CLIP's own SimpleTokenizer builds its vocabulary: the 256 byte
symbols, their ``</w>`` forms, one token per merge (the first 48 894), then the start and end
tokens. ``python -m tests.engine.clip_vocab`` rewrites the copies shipped in
server/sfumato/engine/data/families/clip/; test_single_file.py checks they are these bytes.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

from sfumato.engine.tiny import byte_symbols  # the table the tiny tokenizer uses too

SHIPPED = Path(__file__).resolve().parents[2] / "server/sfumato/engine/data/families/clip"
MERGES = 49152 - 256 - 2  # CLIP's vocabulary is 49408 = 2 × 256 byte symbols + merges + 2


def open_clip_bpe() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip_torch is not installed: pip install open_clip_torch")
    return Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"


def build(bpe: Path) -> tuple[str, str]:
    """(vocab.json text, merges.txt text) from CLIP's gzipped merge list."""
    with gzip.open(bpe) as f:
        lines = f.read().decode("utf-8").split("\n")[1 : MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    symbols = byte_symbols()
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    return json.dumps(vocab, ensure_ascii=False), merges_txt


def load_open_clip_tokenizer() -> object:
    """open_clip's own SimpleTokenizer, loaded from its module file alone (its package's
    __init__ pulls in timm and every model)."""
    path = open_clip_bpe().parent / "tokenizer.py"
    spec = importlib.util.spec_from_file_location("open_clip_tokenizer_only", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer()


if __name__ == "__main__":
    vocab, merges = build(open_clip_bpe())
    SHIPPED.mkdir(parents=True, exist_ok=True)
    (SHIPPED / "vocab.json").write_text(vocab, encoding="utf-8")
    (SHIPPED / "merges.txt").write_text(merges, encoding="utf-8")
    print(SHIPPED)
