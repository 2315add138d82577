"""SFT: prompt tokens are never learned, packing keeps examples apart, the stage trains and checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from train_hf_toy import WORDS, addition_records, tiny_llama, tiny_tokenizer

from r1lab.train import TrainConfig
from r1lab.train.core.metrics_log import read_metrics
from r1lab.train.stages.lm_loss import causal_lm_loss, supports_packed_positions
from r1lab.train.stages.packing import (
    IGNORE_INDEX,
    collate_rows,
    pack_examples,
    sft_example,
)
from r1lab.train.stages.sft import SFTConfig, SFTDataConfig, sft, tokenize_records


def test_prompt_positions_get_ignore_labels_and_truncation_keeps_the_prompt():
    ex = sft_example([5, 6, 7], [8, 9], max_len=10)
    assert ex.input_ids == [5, 6, 7, 8, 9]
    assert ex.labels == [IGNORE_INDEX] * 3 + [8, 9]
    assert sft_example([5, 6, 7], [8, 9], max_len=4).labels == [IGNORE_INDEX] * 3 + [8]


def test_packing_restarts_positions_and_pads_with_ignored_labels():
    exs = [sft_example([1], [2, 3], 8), sft_example([1, 4], [5], 8), sft_example([1], [6, 7, 8, 9], 8)]
    rows = pack_examples(exs, [0, 1, 2], max_len=6)
    assert rows == [[0, 1], [2]]
    batch = collate_rows(exs, rows, pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 1, 4, 5], [1, 6, 7, 8, 9, 0]]
    assert batch["positions"].tolist() == [[0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 4, 5]]
    assert batch["labels"].tolist() == [[-100, 2, 3, -100, -100, 5], [-100, 6, 7, 8, 9, -100]]


def test_loss_counts_only_completion_targets_closed_form():
    tok = tiny_tokenizer()
    [ex] = tokenize_records([{"prompt": "what is 1 + 2 ?", "completion": "3"}], tok, max_len=32)
    assert ex.input_ids == [1] + [WORDS.index(w) for w in "what is 1 + 2 ? 3".split()] + [2]
    assert ex.labels.count(IGNORE_INDEX) == 7           # <bos> + 6 prompt words; "3" and <eos> are learned
    model = tiny_llama()
    ids, labels = torch.tensor([ex.input_ids]), torch.tensor([ex.labels])
    # a head of zeros predicts the uniform distribution: CE is exactly log V whatever the prompt says
    with torch.no_grad():
        model.lm_head.weight.zero_()
    loss, metrics = causal_lm_loss(model, ids, labels)
    assert loss.item() == pytest.approx(math.log(len(WORDS)), rel=1e-6) and int(metrics["num_tokens"]) == 2
    # with a random head: the mean of -log p over exactly the two completion targets
    model = tiny_llama(seed=1)
    loss, _ = causal_lm_loss(model, ids, labels)
    logp = F.log_softmax(model(ids).logits[0].float(), -1)
    n = len(ex.input_ids)
    expected = -(logp[n - 3, ex.input_ids[n - 2]] + logp[n - 2, ex.input_ids[n - 1]]) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # prompt tokens get no gradient signal through their own labels: changing a prompt token's *label* is a no-op
    labels2 = labels.clone()
    labels2[0, 3] = IGNORE_INDEX
    assert causal_lm_loss(model, ids, labels2)[0].item() == pytest.approx(loss.item(), rel=1e-6)


def test_packed_row_equals_separate_rows_for_hf_models():
    model = tiny_llama(seed=2)
    assert supports_packed_positions(model)
    tok = tiny_tokenizer()
    exs = tokenize_records(addition_records(3), tok, max_len=64)
    packed = collate_rows(exs, [[0, 1, 2]], pad_id=0)
    loss_packed, m = causal_lm_loss(model, packed["input_ids"], packed["labels"], packed["positions"])
    total, count = 0.0, 0
    for i in range(3):
        single = collate_rows(exs, [[i]], pad_id=0)
        loss_i, mi = causal_lm_loss(model, single["input_ids"], single["labels"])
        total += loss_i.item() * int(mi["num_tokens"])
        count += int(mi["num_tokens"])
    assert int(m["num_tokens"]) == count
    assert loss_packed.item() == pytest.approx(total / count, rel=1e-5)
    # without restarted positions the examples would see each other: the loss changes
    plain, _ = causal_lm_loss(model, packed["input_ids"], packed["labels"])
    assert abs(plain.item() - loss_packed.item()) > 1e-4


def test_sft_trains_an_hf_model_and_checkpoints_it_with_its_tokenizer(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = SFTConfig(data=SFTDataConfig(max_len=64, batch_size=4),
                    train=TrainConfig(out_dir=str(tmp_path / "sft"), lr=1e-2, max_steps=25, progress=False,
                                      tensorboard=False, warmup_steps=2))
    model = tiny_llama()
    result = sft(cfg, records=addition_records(32), model=model, tokenizer=tiny_tokenizer())
    rows = read_metrics(tmp_path / "sft")
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]
    assert all(r["num_tokens"] > 0 for r in rows)
    back = AutoModelForCausalLM.from_pretrained(result.checkpoint)
    assert AutoTokenizer.from_pretrained(result.checkpoint).get_vocab() == tiny_tokenizer().get_vocab()
    for name, p in back.state_dict().items():
        assert torch.equal(p, model.state_dict()[name]), name


def test_packed_row_equals_separate_rows_for_r1lab_models():
    from r1lab.model import ModelConfig, Transformer

    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_preset(
        "tiny", vocab_size=len(WORDS), dim=64, inter_dim=128, moe_inter_dim=32, n_layers=2, q_lora_rank=32,
        kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, mtp_depth=0, balance_alpha=0.0))
    assert supports_packed_positions(model)
    exs = tokenize_records(addition_records(3), tiny_tokenizer(), max_len=64)
    packed = collate_rows(exs, [[0, 1, 2]], pad_id=0)
    loss_packed, m = causal_lm_loss(model, packed["input_ids"], packed["labels"], packed["positions"])
    total = 0.0
    for i in range(3):
        single = collate_rows(exs, [[i]], pad_id=0)
        loss_i, mi = causal_lm_loss(model, single["input_ids"], single["labels"])
        total += loss_i.item() * int(mi["num_tokens"])
    assert loss_packed.item() == pytest.approx(total / int(m["num_tokens"]), rel=1e-5)


def test_sft_gradients_do_not_depend_on_the_micro_batch_split():
    """Global token mean: 1 x 4 rows and 2 x 2 rows (different target counts per micro-batch) agree."""
    from r1lab.train.core.loop import accumulate_gradients
    from r1lab.train.stages.sft import SFTStage

    model = tiny_llama(seed=4).double()
    records = [{"prompt": f"what is {i} ?", "completion": " ".join(["so"] * (1 + 3 * i)) + f" {i}"} for i in range(8)]
    exs = tokenize_records(records, tiny_tokenizer(), max_len=64)
    assert len({len(e) for e in exs}) == 8                     # every example has its own target count
    grads = []
    for batch_size, accum in ((4, 1), (2, 2), (1, 4)):
        stage = SFTStage(exs, batch_size=batch_size, grad_accum=accum, seed=0, max_len=64, pad_id=0, packing=False)
        model.zero_grad(set_to_none=True)
        accumulate_gradients(model, stage, [stage.next_batch(0, i) for i in range(accum)])
        grads.append([p.grad.clone() for p in model.parameters()])
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
