"""Multi-Token Prediction: depth k at position i sees token i+k and is scored against token i+k+1."""

import torch
import torch.nn.functional as F
from conftest import tiny_config

from r1lab.model import IGNORE_INDEX, Transformer
from r1lab.model.mtp import shift_left
from r1lab.model.rope import rope_cos_sin


def test_shift_left_fills_the_tail():
    x = torch.tensor([[1, 2, 3, 4]])
    assert shift_left(x, 1, 0).tolist() == [[2, 3, 4, 0]]
    assert shift_left(x, 2, IGNORE_INDEX).tolist() == [[3, 4, IGNORE_INDEX, IGNORE_INDEX]]


def test_mtp_loss_matches_hand_built_alignment():
    """Recompute depth 1 by hand on the truncated sequence: h'_i = eh_proj([enorm(Emb(t_{i+1})); hnorm(h_i)])."""
    torch.manual_seed(0)
    model = Transformer(tiny_config(mtp_lambda=0.5)).eval()
    x = torch.randint(1, 64, (2, 12))
    out = model(x, labels=x, return_hidden=True)
    mtp = model.mtp_layers[0]
    T = x.shape[1]
    h = out.hidden[:, : T - 1]
    emb = model.model.embed_tokens(x[:, 1:])
    inp = mtp.eh_proj(torch.cat([mtp.enorm(emb), mtp.hnorm(h)], -1))
    cos, sin = rope_cos_sin(model.rope_inv_freq, torch.arange(T - 1).unsqueeze(0))
    hk, _ = mtp(inp, cos, sin, None)
    logits = model.lm_head(mtp.shared_head.norm(hk))
    want = F.cross_entropy(logits[:, : T - 2].reshape(-1, 64), x[:, 2:].reshape(-1))
    assert torch.allclose(out.mtp_loss, 0.5 * want, atol=1e-5)
    assert torch.allclose(out.loss, out.main_loss + out.mtp_loss + out.balance_loss)


def test_ignored_labels_and_tails_do_not_count():
    torch.manual_seed(1)
    model = Transformer(tiny_config()).eval()
    x = torch.randint(1, 64, (2, 10))
    labels = x.clone()
    labels[:, :4] = IGNORE_INDEX  # a prompt that is not trained on
    a = model(x, labels=labels)
    # main loss only over targets 4..9 at positions 3..8; MTP depth 1 over targets 4..9 at positions 2..7
    logits = a.logits
    main = F.cross_entropy(logits[:, 3:9].reshape(-1, 64), x[:, 4:10].reshape(-1))
    assert torch.allclose(a.main_loss, main, atol=1e-6)
    out = model(x, labels=labels, return_hidden=True)
    mtp_logits, _ = model.mtp_forward(out.hidden, shift_left(x, 1, model.config.pad_token_id))
    mtp = F.cross_entropy(mtp_logits[:, 2:8].reshape(-1, 64), x[:, 4:10].reshape(-1))
    assert torch.allclose(a.mtp_loss, model.config.mtp_lambda * mtp, atol=1e-6)
    all_ignored = torch.full_like(x, IGNORE_INDEX)
    c = model(x, labels=all_ignored)
    assert c.main_loss.item() == 0.0 and c.mtp_loss.item() == 0.0  # no NaN from empty targets


def test_mtp_draft_with_cache_matches_training_path():
    """The engine's drafting call (`mtp_forward` with a cache) gives the training forward's MTP logits."""
    torch.manual_seed(2)
    model = Transformer(tiny_config()).eval()
    x = torch.randint(1, 64, (2, 10))
    with torch.no_grad():
        out = model(x, return_hidden=True)
        ref, _ = model.mtp_forward(out.hidden[:, :9], x[:, 1:])  # no cache: positions 0..8
        cache = model.new_cache(2, 16)
        pos = torch.arange(9).expand(2, 9)
        main = model(x[:, :9], cache=cache, positions=pos, return_hidden=True)
        draft, _ = model.mtp_forward(main.hidden, x[:, 1:], positions=pos, cache=cache)
    assert (draft - ref).abs().max() <= 1e-5


def test_packed_documents_do_not_see_each_other_and_targets_do_not_cross():
    """Two examples packed in one row with restarted positions == the two run separately (logits and losses)."""
    torch.manual_seed(3)
    model = Transformer(tiny_config()).eval()
    a, b = torch.randint(1, 64, (1, 7)), torch.randint(1, 64, (1, 9))
    packed = torch.cat([a, b], 1)
    positions = torch.cat([torch.arange(7), torch.arange(9)]).unsqueeze(0)
    with torch.no_grad():
        out = model(packed, labels=packed, positions=positions)
        la, lb = model(a, labels=a), model(b, labels=b)
    assert (out.logits[:, :7] - la.logits).abs().max() <= 1e-5
    assert (out.logits[:, 7:] - lb.logits).abs().max() <= 1e-5
    # main: 6 + 8 targets; MTP depth 1: 5 + 7 targets (means weighted by target counts)
    assert torch.allclose(out.main_loss, (6 * la.main_loss + 8 * lb.main_loss) / 14, atol=1e-5)
    assert torch.allclose(out.mtp_loss, (5 * la.mtp_loss + 7 * lb.mtp_loss) / 12, atol=1e-5)
