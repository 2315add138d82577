"""Tiny BPE tokenizer: exact round trips, digits one per token, special tokens one id each, save/load."""

import json

import pytest

from r1lab.data import build_corpus
from r1lab.data.tokenizer import (
    BOS,
    EOS,
    PAD,
    SPECIAL_TOKENS,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
from r1lab.errors import DataError


@pytest.fixture(scope="module")
def corpus():
    return [d["text"] for d in build_corpus("arith?operands=3", 600, 0)]


@pytest.fixture(scope="module")
def tok(corpus):
    return train_tokenizer(corpus, vocab_size=320)


def test_every_special_token_is_one_id_with_the_first_ids(tok):
    ids = [tok(s, add_special_tokens=False)["input_ids"] for s in SPECIAL_TOKENS]
    assert ids == [[i] for i in range(len(SPECIAL_TOKENS))]
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (BOS, EOS, PAD)
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2)


def test_text_round_trips_exactly_including_unseen_characters(tok, corpus):
    for text in [*corpus[:50], "héllo wörld 🙂\ttabs  and  spaces\n", "  leading", "x" * 300]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text


def test_digits_are_single_tokens(tok):
    pieces = tok.convert_ids_to_tokens(tok("12345+678=?", add_special_tokens=False)["input_ids"])
    assert pieces[:6] == ["1", "2", "3", "4", "5", "+"]
    assert all(len(p) == 1 for p in pieces if any(c.isdigit() for c in p))


def test_bos_is_added_and_format_tags_survive_skipping_specials(tok, corpus):
    ids = tok(corpus[0])["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    text = tok.decode(ids, skip_special_tokens=True)
    assert text == corpus[0].removesuffix(EOS)
    assert "<think>" in text and "</answer>" in text


def test_bpe_merges_make_sequences_shorter_than_bytes(tok, corpus):
    n_tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in corpus[:100])
    n_bytes = sum(len(t.encode()) for t in corpus[:100])
    assert n_tokens < 0.8 * n_bytes
    assert len(tok) <= 320


def test_chat_template_renders(tok):
    text = tok.apply_chat_template([{"role": "user", "content": "1+1=?"}], tokenize=False, add_generation_prompt=True)
    assert text == "User: 1+1=?\nAssistant: "


def test_save_and_load_next_to_a_checkpoint(tok, tmp_path, corpus):
    (tmp_path / "config.json").write_text("{}")
    written = save_tokenizer(tok, tmp_path)
    assert (tmp_path / "tokenizer.json").is_file() and (tmp_path / "tokenizer_config.json").is_file()
    assert (tmp_path / "config.json").read_text() == "{}"  # the checkpoint's files are left alone
    assert all(p.parent == tmp_path for p in written)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    back = load_tokenizer(tmp_path)
    for text in corpus[:20]:
        assert back(text)["input_ids"] == tok(text)["input_ids"]
    assert back.eos_token_id == tok.eos_token_id and back.pad_token_id == tok.pad_token_id
    assert back.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False, add_generation_prompt=True)
    json.loads((tmp_path / "tokenizer.json").read_text())


def test_autotokenizer_loads_it_too(tok, tmp_path):
    from transformers import AutoTokenizer

    save_tokenizer(tok, tmp_path)
    auto = AutoTokenizer.from_pretrained(str(tmp_path))
    assert auto("7+8=?")["input_ids"] == tok("7+8=?")["input_ids"]


def test_training_is_deterministic(corpus):
    a = train_tokenizer(corpus[:200], vocab_size=300)
    b = train_tokenizer(corpus[:200], vocab_size=300)
    assert a.get_vocab() == b.get_vocab()


def test_bad_arguments(corpus, tmp_path):
    with pytest.raises(DataError, match="vocab_size"):
        train_tokenizer(corpus, vocab_size=100)
    with pytest.raises(DataError, match="must include"):
        train_tokenizer(corpus, vocab_size=300, special_tokens=["<think>"])
    with pytest.raises(DataError, match="has no tokenizer"):
        load_tokenizer(tmp_path)
