"""MTP speculative decoding (V3 §2.2 / §5.4.3): the MTP module drafts, the main model verifies.

Each iteration feeds the main model the last accepted token x (position p) and K drafts d_1..d_K (positions
p+1..p+K), which yields P_1..P_K that the drafts are checked against and P_{K+1} after the last draft.
Standard speculative rejection sampling (Leviathan et al. 2023; Chen et al. 2023), draft by draft:
- accept d_j with probability min(1, P_j(d_j) / Q_j(d_j)) (greedy: iff d_j = argmax P_j) and go on;
- at the first rejection emit a draw from the residual norm(max(P_j - Q_j, 0)) (greedy: argmax P_j) and stop;
- if all K are accepted, emit a bonus token drawn from P_{K+1}: an iteration yields 1..K+1 tokens.
Every emitted token is therefore distributed exactly as under plain sampling from the policy (P and Q
are the *processed* policies: temperature, top-k, top-p, min-p), and greedy output equals plain greedy.

Drafts: d_1 comes from the MTP module at the last verified slot. Further drafts chain the same module (TensorRT-LLM's
"MTP Eagle" for checkpoints with one MTP module, as DeepSeek-V3/R1 ship): d_{j+1} from the module's own output state
and d_j, one slot further (that slot's cache entry is provisional; the pass after verification rewrites it). Any draft distribution keeps the
output exact; chaining only decides how often drafts are accepted.

The MTP module keeps its own layer in the compressed cache. Its slot i holds (h_i, token_{i+1}); after an
iteration it is run on the newly completed slots p..p+a (a = drafts accepted; shorter rows repeat their last slot:
identical inputs, identical writes), and its last output drafts the next d_1.
Random numbers come from each row's stream, indexed by the completion index of the token they decide.
"""

from __future__ import annotations

from typing import Any

import torch

from r1lab.engine.loop import RowBuffers, TokenCallback, finished_rows
from r1lab.engine.params import Completion, SamplingParams
from r1lab.engine.r1lab_step import forward as step_forward
from r1lab.engine.r1lab_step import mtp_last, normed_embeddings, step_inputs
from r1lab.engine.randomness import row_uniforms
from r1lab.engine.sampling import (
    model_logprobs,
    policy_logprobs,
    sample_from_probs,
    sample_tokens,
)
from r1lab.engine.stopping import StopCriteria

ACCEPT, RESAMPLE, DRAFT = 0, 1, 2  # uniform columns: accept test, residual/bonus draw, draft draw


def draft_tokens(logits: torch.Tensor, params: SamplingParams, u: torch.Tensor):
    """Sample drafts from the MTP logits.  -> tokens [B], draft policy probs Q [B, V] (None when greedy)"""
    lp = model_logprobs(logits, params.temperature)
    if params.greedy:
        return lp.argmax(-1), None
    q = policy_logprobs(lp, params).exp()
    return sample_from_probs(q, u), q


def verify(logits: torch.Tensor, drafts: torch.Tensor, q: torch.Tensor | None, params: SamplingParams,
           u_accept: torch.Tensor, u_draw: torch.Tensor):
    """Speculative acceptance of `drafts [B, K]` (draft policies `q [B, K, V]`) under the main model's
    `logits [B, K+1, V]`, in one pass over all positions. `u_accept [B, K]`, `u_draw [B, K+1]`.

    -> accepted [B] (number of leading drafts accepted, 0..K), tokens [B, K+1] (the emitted ones are
       `tokens[:, :accepted+1]`: accepted drafts, then the residual draw or the bonus), their model log-probs
       [B, K+1] and policy log-probs [B, K+1].
    """
    K = drafts.shape[1]
    model_lp = model_logprobs(logits, params.temperature)  # [B, K+1, V]
    if params.greedy:
        tokens = model_lp.argmax(-1)
        lp = model_lp.gather(-1, tokens[..., None]).squeeze(-1)
        ok = tokens[:, :K] == drafts
        return ok.long().cumprod(1).sum(1), tokens, lp, torch.zeros_like(lp)
    policy_lp = policy_logprobs(model_lp, params)
    p = policy_lp.exp()
    p_d = p[:, :K].gather(-1, drafts[..., None]).squeeze(-1)  # [B, K]
    q_d = q.gather(-1, drafts[..., None]).squeeze(-1)
    ok = u_accept.to(p.dtype) * q_d < p_d
    residual = (p[:, :K] - q).clamp(min=0)
    empty = residual.sum(-1, keepdim=True) <= 0  # P == Q: every draft is accepted anyway
    residual = torch.where(empty, p[:, :K], residual)
    draws = sample_from_probs(torch.cat([residual, p[:, K:]], dim=1), u_draw)  # [B, K+1]
    tokens = torch.cat([torch.where(ok, drafts, draws[:, :K]), draws[:, K:]], dim=1)
    lp = model_lp.gather(-1, tokens[..., None]).squeeze(-1)
    plp = lp if policy_lp is model_lp else policy_lp.gather(-1, tokens[..., None]).squeeze(-1)
    return ok.long().cumprod(1).sum(1), tokens, lp, plp


class _Rows:
    """Per-row decode state that is filtered together when rows finish."""

    def __init__(self, **tensors: torch.Tensor):
        self.__dict__.update(tensors)

    def select(self, keep: torch.Tensor) -> None:
        for name, value in list(self.__dict__.items()):
            self.__dict__[name] = value[keep.to(value.device)]


@torch.inference_mode()
def run_chunk_speculative(runner: Any, prompts: list[list[int]], prompt_indices: list[int], params: SamplingParams,
                          stop: StopCriteria, on_tokens: TokenCallback | None = None, num_drafts: int = 3):
    """Like `loop.run_chunk`, with `num_drafts` MTP drafts per iteration.

    -> (completions, {"drafts": first drafts, "accepted": first drafts accepted, "draft_tokens": all drafts,
        "accepted_tokens": all drafts accepted, "steps": verify steps})

    Steps run through `r1lab_step` (one RoPE/bias build per verify step, reused by the MTP pass; host-side cache
    span `span`: every position written so far is below it; rows advance at most K+1 positions per iteration).
    When every remaining row needs exactly one more token, drafts would be wasted: a plain 1-token step ends.
    """
    model = runner.model
    K = num_drafts
    n, steps = params.n, params.max_new_tokens
    keys = [(p, j) for p in prompt_indices for j in range(n)]
    uniforms = row_uniforms(params.seed, keys, steps + K, width=3)  # [R, steps+K, 3]
    buffers = RowBuffers(len(keys), steps)
    stats = {"drafts": 0, "accepted": 0, "draft_tokens": 0, "accepted_tokens": 0, "steps": 0}

    def emit(rows: torch.Tensor, tokens, lp, plp) -> torch.Tensor:
        host_tokens = tokens.cpu()
        buffers.append(rows, host_tokens, lp.cpu(), plp.cpu())
        if on_tokens is not None:
            on_tokens([prompt_indices[r // n] * n + r % n for r in rows.tolist()], host_tokens.tolist())
        return finished_rows(stop, buffers, rows, host_tokens, params)

    def emit_run(rows: torch.Tensor, tokens, lp, plp, count: torch.Tensor) -> torch.Tensor:
        """Emit `tokens[:, :count]` [B, <=K+1] per row, up to the row's stop token or length limit."""
        if params.stop or on_tokens is not None:  # per-token checks on decoded text / streaming: one at a time
            done = torch.zeros(len(rows), dtype=torch.bool)
            for j in range(tokens.shape[1]):
                go = ((count > j) & ~done).nonzero().squeeze(-1)
                if len(go):
                    on = go.to(tokens.device)
                    done[go] |= emit(rows[go], tokens[on, j], lp[on, j], plp[on, j])
            return done
        tokens, lp, plp = tokens.cpu(), lp.cpu(), plp.cpu()
        at = buffers.lengths[rows][:, None]
        j = torch.arange(tokens.shape[1])
        hit = stop.token_hit(tokens) & (j < count[:, None])  # [B, K+1]
        take = (j < count[:, None]) & (at + j < steps) & (hit.long().cumsum(1) - hit.long() == 0)  # up to a stop
        cols = torch.where(take, at + j, at)  # untaken columns rewrite the first token with its own values
        buffers.tokens[rows[:, None], cols] = torch.where(take, tokens, tokens[:, :1])
        buffers.logprobs[rows[:, None], cols] = torch.where(take, lp, lp[:, :1]).float()
        buffers.policy_logprobs[rows[:, None], cols] = torch.where(take, plp, plp[:, :1]).float()
        buffers.lengths[rows] = at[:, 0] + take.sum(1)
        stopped = (hit & take).any(1)
        for row in rows[stopped].tolist():
            buffers.finish[row] = "stop"
        return stopped | (buffers.lengths[rows] >= steps)

    span = max(len(p) for p in prompts)
    pre = runner.prefill_full(prompts, span + steps + K + 1)
    cache = pre.state.cache.repeat_interleave(n) if n > 1 else pre.state.cache
    rep = (lambda t: t.repeat_interleave(n, dim=0)) if n > 1 else (lambda t: t)
    ids, hidden, positions, lengths = rep(pre.ids), rep(pre.hidden), rep(pre.positions), rep(pre.lengths)
    device = ids.device
    alive = torch.arange(len(keys))
    row_range = torch.arange(len(keys), device=device)

    # First token from the prompt pass, as in plain decoding.
    x, lp, plp = sample_tokens(rep(pre.logits), params, uniforms[:, 0, RESAMPLE].to(device))
    done = emit(alive, x, lp, plp)
    # MTP pass over the prompt: slot i gets (h_i, token_{i+1}); the last slot's token is the one just sampled.
    next_ids = torch.cat([ids[:, 1:], ids[:, :1]], dim=1)
    next_ids[row_range, lengths - 1] = x.to(device)
    mtp_logits, mtp_h = model.mtp_forward(hidden, next_ids, positions=positions, cache=cache)
    rows = _Rows(alive=alive, x=x.to(device), pos=lengths.clone(), q_logits=mtp_logits[row_range, lengths - 1],
                 q_state=mtp_h[row_range, lengths - 1])

    table = model.model.embed_tokens.weight
    enormed = normed_embeddings(model) if table.numel() <= 1 << 24 else None  # [V, D] lookup; skip when huge
    H = model.config.n_heads
    offsets = torch.arange(K + 1, device=device)
    while not done.all():
        if done.any():
            keep = (~done).nonzero().squeeze(-1)
            cache = cache.select(keep.to(device))
            rows.select(keep)
        B = rows.alive.shape[0]
        at = buffers.lengths[rows.alive]  # completion index of the first draft
        u = uniforms[rows.alive[:, None], at[:, None] + torch.arange(K + 1)].to(device)  # [B, K+1, 3]
        drafts, qs = [], []
        logits_j, state_j = rows.q_logits, rows.q_state
        for j in range(K):
            if j:  # chain: the module's own state and the previous draft, one slot further
                chain = step_inputs(model, cache, (rows.pos + j - 1)[:, None], span + K + 1)
                logits_j, state_j = mtp_last(model, state_j[:, None], drafts[-1][:, None], chain, cache, enormed)
            d, q = draft_tokens(logits_j, params, u[:, j, DRAFT])
            drafts.append(d)
            qs.append(q)
        drafts_t = torch.stack(drafts, dim=1)  # [B, K]
        inputs = step_inputs(model, cache, rows.pos[:, None] + offsets, span + K + 1)
        span += K + 1
        logits, h = step_forward(model, torch.cat([rows.x[:, None], drafts_t], dim=1), inputs, cache)  # [B,K+1,·]
        q_t = None if params.greedy else torch.stack(qs, dim=1)
        accepted, tokens, lp, plp = verify(logits, drafts_t, q_t, params, u[:, :K, ACCEPT], u[:, :, RESAMPLE])
        host_accepted = accepted.cpu()
        stats["steps"] += 1
        stats["drafts"] += B
        stats["accepted"] += int((host_accepted > 0).sum())
        stats["draft_tokens"] += B * K
        stats["accepted_tokens"] += int(host_accepted.sum())
        done = emit_run(rows.alive, tokens, lp, plp, host_accepted + 1)

        # The MTP module's next slots: p..p+a with (h, next token) (a = accepted), shorter rows repeating slot p+a.
        last = accepted
        idx = torch.minimum(offsets, last[:, None])  # [B, K+1]
        mtp_hidden = h.gather(1, idx[..., None].expand_as(h))
        mtp_ids = tokens.gather(1, idx)
        rows.x = tokens.gather(1, last[:, None]).squeeze(1)  # the last emitted token
        rows.pos = rows.pos + 1 + last
        if done.all():
            break
        mtp_inputs = inputs.upto(last, H)
        if done.any():  # run the MTP module only for rows that continue
            live = (~done).nonzero().squeeze(-1)
            cache = cache.select(live.to(device))
            rows.select(live)
            on = live.to(device)
            mtp_hidden, mtp_ids, mtp_inputs = mtp_hidden[on], mtp_ids[on], mtp_inputs.select(on)
            done = torch.zeros(len(live), dtype=torch.bool)
        if bool((buffers.lengths[rows.alive] == steps - 1).all()):  # one token left everywhere: no draft needed
            inputs = step_inputs(model, cache, rows.pos[:, None], span + 1)
            logits, _ = step_forward(model, rows.x[:, None], inputs, cache)
            u = uniforms[rows.alive, steps - 1, RESAMPLE].to(device)
            emit(rows.alive, *sample_tokens(logits[:, 0], params, u))
            break
        rows.q_logits, rows.q_state = mtp_last(model, mtp_hidden, mtp_ids, mtp_inputs, cache, enormed)

    completions: list[list[Completion]] = [
        [buffers.completion(i * n + j, prompts[i], stop) for j in range(n)] for i in range(len(prompts))
    ]
    return completions, stats
