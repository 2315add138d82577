"""A small byte-level BPE tokenizer for tiny models, trained with Hugging Face `tokenizers`.

Digits are split one per token (arithmetic stays learnable), every byte has a token (any text round-trips
exactly), BOS is added on encode (pretraining documents and prompts start the same way), and the format
tags are single tokens. `<|bos|> <|eos|> <|pad|>` are *special* (dropped by `skip_special_tokens`);
the think/answer tags are ordinary added tokens, so decoded completions keep them for the rewards.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from r1lab.errors import DataError

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
FORMAT_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
SPECIAL_TOKENS = (BOS, EOS, PAD, *FORMAT_TAGS)
_CONTROL = (BOS, EOS, PAD)

# Minimal chat template so `apply_chat_template` works for tiny models: role-prefixed turns.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% else %}Assistant: {{ message['content'] }}" + EOS + "\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)


def _byte_alphabet_size() -> int:
    from tokenizers import pre_tokenizers  # only where a tokenizer is trained

    return len(pre_tokenizers.ByteLevel.alphabet())


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 512,
    special_tokens: Iterable[str] = SPECIAL_TOKENS,
    *,
    min_frequency: int = 2,
    add_bos: bool = True,
):
    """Train byte-level BPE on `texts`; returns a `transformers.PreTrainedTokenizerFast`."""
    from tokenizers import (  # only where a tokenizer is trained
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    specials = list(dict.fromkeys(special_tokens))
    for required in _CONTROL:
        if required not in specials:
            raise DataError(f"special_tokens must include {required!r}")
    floor = _byte_alphabet_size() + len(specials)
    if vocab_size < floor:
        raise DataError(f"vocab_size {vocab_size} is below {floor} (256 bytes + {len(specials)} special tokens)")

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[AddedToken(s, special=s in _CONTROL, normalized=False) for s in specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((t for t in texts), trainer=trainer)
    # the format tags are whole tokens but not "special": decoding keeps them
    tok.add_tokens([AddedToken(s, special=False, normalized=False) for s in specials if s not in _CONTROL])
    if add_bos:
        bos_id = tok.token_to_id(BOS)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
        )
    return _wrap(tok, specials)


def _wrap(tok, specials: list[str]):
    from transformers import PreTrainedTokenizerFast  # slow import, paid where used

    extra = [s for s in specials if s not in _CONTROL]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        clean_up_tokenization_spaces=False, model_max_length=1_000_000,
    )
    fast.chat_template = CHAT_TEMPLATE
    if extra:
        # registered as non-special added tokens: one id each, kept by decode(skip_special_tokens=True)
        fast.add_tokens(extra)
    return fast


def save_tokenizer(tokenizer, directory: str | os.PathLike) -> list[Path]:
    """Write tokenizer.json + tokenizer_config.json (+ special_tokens_map.json) into `directory`, each file
    replaced atomically (the directory may already hold a checkpoint)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(dir=directory, prefix=".tokenizer.") as tmp:
        tokenizer.save_pretrained(tmp)
        for f in sorted(Path(tmp).iterdir()):
            if f.is_file():
                os.replace(f, directory / f.name)
                written.append(directory / f.name)
    return written


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def load_tokenizer(path: str | os.PathLike, *, required: bool = True):
    """The one tokenizer loader: a `tokenizer.json` file, or a directory holding tokenizer files (r1lab's BPE,
    saved by `save_tokenizer`, or any Hugging Face tokenizer), offline. A directory without tokenizer files gives
    None when not `required` (token-id prompts still work), else a one-line DataError, as does one that
    transformers cannot load (its own message is lines of install advice)."""
    from transformers import (  # heavy: only where a tokenizer is loaded
        AutoTokenizer,
        PreTrainedTokenizerFast,
    )

    p = Path(path)
    if p.is_file():
        return PreTrainedTokenizerFast(tokenizer_file=str(p))
    if not p.is_dir():
        raise DataError(f"{path}: tokenizer not found")
    if not any((p / name).is_file() for name in TOKENIZER_FILES):
        if required:
            raise DataError(f"{p} has no tokenizer (tokenizer.json or tokenizer_config.json)")
        return None
    try:
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{p} has no tokenizer (tokenizer.json or tokenizer_config.json) that transformers can "
                        f"load: {reason}") from None


def copy_tokenizer(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy tokenizer files from one checkpoint dir to another (for stages that keep the tokenizer)."""
    save_tokenizer(load_tokenizer(src), dst)


__all__ = ["BOS", "EOS", "PAD", "FORMAT_TAGS", "SPECIAL_TOKENS", "CHAT_TEMPLATE", "train_tokenizer",
           "save_tokenizer", "load_tokenizer", "copy_tokenizer"]
