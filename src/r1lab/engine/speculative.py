"""MTP speculative decoding (V3 §2.2 / §5.4.3): the MTP module drafts token t+2, the main model verifies.

Each iteration feeds the main model two tokens per row, the last accepted token x (position p) and the
draft d (position p+1), which yields the distribution P1 that d is checked against and P2 for the token
after d. Standard speculative rejection sampling (Leviathan et al. 2023; Chen et al. 2023):
- accept d with probability min(1, P1(d) / Q(d)) (greedy: iff d = argmax P1); then a bonus token is
  sampled from P2, so an iteration yields two tokens;
- otherwise sample from the residual norm(max(P1 - Q, 0)) (greedy: argmax P1): one token.
Every emitted token is therefore distributed exactly as under plain sampling from the policy (P and Q
are the *processed* policies: temperature, top-k, top-p, min-p), and greedy output equals plain greedy.

The MTP module keeps its own layer in the compressed cache. Its slot i holds (h_i, token_{i+1}); after an
iteration it is run on the (up to) two newly completed slots: (p, p+1) when d was accepted, or slot p
twice (identical inputs, identical writes) when it was rejected, and its last output drafts the next d.
Random numbers come from each row's stream, indexed by the completion index of the token they decide.
"""

from __future__ import annotations

from typing import Any

import torch

from r1lab.engine.loop import RowBuffers, TokenCallback, finished_rows
from r1lab.engine.params import Completion, SamplingParams
from r1lab.engine.r1lab_step import forward as step_forward, mtp_last, normed_embeddings, step_inputs
from r1lab.engine.randomness import row_uniforms
from r1lab.engine.sampling import model_logprobs, policy_logprobs, sample_from_probs, sample_tokens
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
           u_accept: torch.Tensor, u_first: torch.Tensor, u_bonus: torch.Tensor):
    """Speculative acceptance of `drafts` under the main model's `logits [B, 2, V]` (P1 at the draft's position,
    P2 after it), plus the bonus draw from P2, in one pass over both positions.

    -> accepted [B] bool, tokens [B, 2] (first: the draft if accepted, else the residual draw; second: the bonus
       token, meaningful only where accepted), their model log-probs [B, 2] and policy log-probs [B, 2].
    """
    model_lp = model_logprobs(logits, params.temperature)  # [B, 2, V]
    if params.greedy:
        tokens = model_lp.argmax(-1)
        lp = model_lp.gather(-1, tokens[..., None]).squeeze(-1)
        return tokens[:, 0] == drafts, tokens, lp, torch.zeros_like(lp)
    policy_lp = policy_logprobs(model_lp, params)
    p = policy_lp.exp()
    p1 = p[:, 0]
    p_d = p1.gather(-1, drafts[:, None]).squeeze(-1)
    q_d = q.gather(-1, drafts[:, None]).squeeze(-1)
    accepted = u_accept.to(p.dtype) * q_d < p_d
    residual = (p1 - q).clamp(min=0)
    empty = residual.sum(-1, keepdim=True) <= 0  # P == Q: every draft is accepted anyway
    residual = torch.where(empty, p1, residual)
    draws = sample_from_probs(torch.stack([residual, p[:, 1]], dim=1), torch.stack([u_first, u_bonus], dim=1))
    tokens = torch.stack([torch.where(accepted, drafts, draws[:, 0]), draws[:, 1]], dim=1)
    lp = model_lp.gather(-1, tokens[..., None]).squeeze(-1)
    plp = lp if policy_lp is model_lp else policy_lp.gather(-1, tokens[..., None]).squeeze(-1)
    return accepted, tokens, lp, plp


class _Rows:
    """Per-row decode state that is filtered together when rows finish."""

    def __init__(self, **tensors: torch.Tensor):
        self.__dict__.update(tensors)

    def select(self, keep: torch.Tensor) -> None:
        for name, value in list(self.__dict__.items()):
            self.__dict__[name] = value[keep.to(value.device)]


@torch.inference_mode()
def run_chunk_speculative(runner: Any, prompts: list[list[int]], prompt_indices: list[int], params: SamplingParams,
                          stop: StopCriteria, on_tokens: TokenCallback | None = None):
    """Like `loop.run_chunk`, with MTP drafts. -> (completions, {"drafts": int, "accepted": int})

    Steps run through `r1lab_step` (one RoPE/bias build per verify step, reused by the MTP pass; host-side cache
    span `span`: every position written so far is below it; rows advance at most two positions per iteration).
    When every remaining row needs exactly one more token, the draft would be wasted: a plain 1-token step ends.
    """
    model = runner.model
    n, steps = params.n, params.max_new_tokens
    keys = [(p, j) for p in prompt_indices for j in range(n)]
    uniforms = row_uniforms(params.seed, keys, steps + 1, width=3)  # [R, steps+1, 3]
    buffers = RowBuffers(len(keys), steps)
    stats = {"drafts": 0, "accepted": 0}

    def emit(rows: torch.Tensor, tokens, lp, plp) -> torch.Tensor:
        host_tokens = tokens.cpu()
        buffers.append(rows, host_tokens, lp.cpu(), plp.cpu())
        if on_tokens is not None:
            on_tokens([prompt_indices[r // n] * n + r % n for r in rows.tolist()], host_tokens.tolist())
        return finished_rows(stop, buffers, rows, host_tokens, params)

    def emit_pair(rows: torch.Tensor, tokens, lp, plp, accepted: torch.Tensor) -> torch.Tensor:
        """Emit tokens[:, 0] for every row and tokens[:, 1] where the draft was accepted and the row goes on."""
        if params.stop or on_tokens is not None:  # per-token checks on decoded text / streaming: one at a time
            done = emit(rows, tokens[:, 0], lp[:, 0], plp[:, 0])
            second = (accepted & ~done).nonzero().squeeze(-1)
            if len(second):
                on = second.to(tokens.device)
                done[second] |= emit(rows[second], tokens[on, 1], lp[on, 1], plp[on, 1])
            return done
        tokens, lp, plp = tokens.cpu(), lp.cpu(), plp.cpu()
        at = buffers.lengths[rows]
        hit = stop.token_hit(tokens)  # [B, 2]
        second = accepted & ~hit[:, 0] & (at + 1 < steps)
        both = second[:, None]
        cols = torch.where(both, at[:, None] + torch.arange(2), at[:, None])  # a skipped second token rewrites the first
        buffers.tokens[rows[:, None], cols] = torch.where(both, tokens, tokens[:, :1])
        buffers.logprobs[rows[:, None], cols] = torch.where(both, lp, lp[:, :1]).float()
        buffers.policy_logprobs[rows[:, None], cols] = torch.where(both, plp, plp[:, :1]).float()
        buffers.lengths[rows] = at + 1 + second.long()
        stopped = hit[:, 0] | (second & hit[:, 1])
        for row in rows[stopped].tolist():
            buffers.finish[row] = "stop"
        return stopped | (buffers.lengths[rows] >= steps)

    span = max(len(p) for p in prompts)
    pre = runner.prefill_full(prompts, span + steps + 2)
    cache = pre.state.cache.repeat_interleave(n) if n > 1 else pre.state.cache
    rep = (lambda t: t.repeat_interleave(n, dim=0)) if n > 1 else (lambda t: t)
    ids, hidden, positions, lengths = rep(pre.ids), rep(pre.hidden), rep(pre.positions), rep(pre.lengths)
    alive = torch.arange(len(keys))
    row_range = torch.arange(len(keys), device=ids.device)

    # First token from the prompt pass, as in plain decoding.
    x, lp, plp = sample_tokens(rep(pre.logits), params, uniforms[:, 0, RESAMPLE].to(ids.device))
    done = emit(alive, x, lp, plp)
    # MTP pass over the prompt: slot i gets (h_i, token_{i+1}); the last slot's token is the one just sampled.
    next_ids = torch.cat([ids[:, 1:], ids[:, :1]], dim=1)
    next_ids[row_range, lengths - 1] = x.to(ids.device)
    mtp_logits, _ = model.mtp_forward(hidden, next_ids, positions=positions, cache=cache)
    rows = _Rows(alive=alive, x=x.to(ids.device), pos=lengths.clone(),
                 q_logits=mtp_logits[row_range, lengths - 1])

    enormed = normed_embeddings(model)  # [V, D], looked up by every MTP pass
    H = model.config.n_heads
    while not done.all():
        if done.any():
            keep = (~done).nonzero().squeeze(-1)
            cache = cache.select(keep.to(ids.device))
            rows.select(keep)
        B = rows.alive.shape[0]
        at = buffers.lengths[rows.alive]  # completion index of the drafted token
        u_at = uniforms[rows.alive, at].to(ids.device)  # [B, 3]
        u_bonus = uniforms[rows.alive, at + 1, RESAMPLE].to(ids.device)  # [B]
        d, q = draft_tokens(rows.q_logits, params, u_at[:, DRAFT])
        inputs = step_inputs(model, cache, torch.stack([rows.pos, rows.pos + 1], dim=1), span + 2)
        span += 2
        logits, h = step_forward(model, torch.stack([rows.x, d], dim=1), inputs, cache)  # [B,2,V], [B,2,D]
        accepted, tokens, lp, plp = verify(logits, d, q, params, u_at[:, ACCEPT], u_at[:, RESAMPLE], u_bonus)
        host_accepted = accepted.cpu()
        stats["drafts"] += B
        stats["accepted"] += int(host_accepted.sum())
        done = emit_pair(rows.alive, tokens, lp, plp, host_accepted)

        # The MTP module's next slots: (p, p+1) with tokens (d, bonus) after an accept, else slot p twice.
        acc = accepted[:, None]
        mtp_hidden = torch.where(acc[..., None], h, h[:, :1])
        mtp_ids = torch.where(acc, tokens, tokens[:, :1])
        rows.x = mtp_ids[:, 1]  # bonus after an accept, else the residual draw
        rows.pos = rows.pos + 1 + accepted.long()
        if done.all():
            break
        mtp_inputs = inputs.pick(accepted, H)
        if done.any():  # run the MTP module only for rows that continue
            live = (~done).nonzero().squeeze(-1)
            cache = cache.select(live.to(ids.device))
            rows.select(live)
            on = live.to(ids.device)
            mtp_hidden, mtp_ids, mtp_inputs = mtp_hidden[on], mtp_ids[on], mtp_inputs.select(on)
            done = torch.zeros(len(live), dtype=torch.bool)
        if bool((buffers.lengths[rows.alive] == steps - 1).all()):  # one token left everywhere: no draft needed
            inputs = step_inputs(model, cache, rows.pos[:, None], span + 1)
            logits, _ = step_forward(model, rows.x[:, None], inputs, cache)
            u = uniforms[rows.alive, steps - 1, RESAMPLE].to(ids.device)
            emit(rows.alive, *sample_tokens(logits[:, 0], params, u))
            break
        rows.q_logits = mtp_last(model, mtp_hidden, mtp_ids, mtp_inputs, cache, enormed)

    completions: list[list[Completion]] = [
        [buffers.completion(i * n + j, prompts[i], stop) for j in range(n)] for i in range(len(prompts))
    ]
    return completions, stats
