"""CPU smoke test: the tiny preset learns a toy corpus (main, MTP and balance losses; aux-free bias updates)."""

import torch

from r1lab.model import ModelConfig, Transformer


def toy_batch(gen: torch.Generator, batch: int, length: int, vocab: int) -> torch.Tensor:
    """Arithmetic progressions mod `vocab`: the step must be inferred from context, then every token is predictable."""
    start = torch.randint(0, vocab, (batch, 1), generator=gen)
    step = torch.randint(1, 4, (batch, 1), generator=gen)
    return (start + step * torch.arange(length)) % vocab


def test_tiny_preset_loss_falls_on_toy_corpus():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = Transformer(ModelConfig.from_preset("tiny", vocab_size=64)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    losses, mtp_losses = [], []
    for _ in range(20):
        ids = toy_batch(gen, 16, 48, 64)
        out = model(ids, labels=ids)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        model.update_balance_bias(1e-2)
        losses.append(out.main_loss.item())
        mtp_losses.append(out.mtp_loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert first > 3.5  # ~ln(64) at init
    assert last < 0.4 * first, (first, last)
    assert sum(mtp_losses[-5:]) < 0.6 * sum(mtp_losses[:5])
    biases = [moe.gate.e_score_correction_bias for _, moe in model.moe_layers()]
    assert all(b.abs().sum() > 0 for b in biases)  # the aux-free rule moved the biases
