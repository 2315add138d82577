"""A lean decode path for Llama-family HF models (Llama, SmolLM, Qwen2, Mistral without sliding window).

transformers' per-step overhead (module hooks, cache objects, mask building, logits processors) is
larger than the arithmetic at decode batch sizes on a CPU. This runner reuses the HF module's weights,
fused into one QKV and one gate/up matrix per layer and prepacked for oneDNN, keeps one preallocated
KV cache tensor for all layers (fp32 on CPUs), runs the prompts' common prefix (a chat template's system
prompt) once for the batch, and computes the output head only for the last position of a prompt.
Each head's query and key rows are reordered so that the rotate-half RoPE pairs (i, i + hd/2) sit side by
side: RoPE is then one complex multiply, and q . k is unchanged because queries and keys are reordered alike.
Beyond the weight matmuls, a decode step's time goes to attention over the cache and per-call overhead.
Its logits match the HF forward (tests check this); other architectures use `HFGenericRunner`.
`compute_dtype=torch.bfloat16` runs an fp32 model with bf16 weights and matmul inputs (the decode step's
residual stream, norms, RoPE, attention and sampling stay fp32): decode streams every weight once per step,
so halving the bytes is the largest speed lever on a CPU, at the price of logits that differ from the fp32
forward (~1e-2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from r1lab.engine.kernels import PackedLinear, parameter_signature

SUPPORTED_TYPES = {"llama", "qwen2", "mistral"}


def supports(model: Any) -> bool:
    """Whether `LlamaRunner` reproduces this HF model's forward exactly."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED_TYPES:
        return False
    rope = getattr(cfg, "rope_parameters", None) or {}
    rotary = getattr(getattr(model, "model", None), "rotary_emb", None)
    return (
        rotary is not None
        and hasattr(rotary, "inv_freq")
        and rope.get("rope_type", "default") not in ("dynamic", "longrope")
        and getattr(cfg, "hidden_act", "silu") == "silu"
        and not getattr(cfg, "mlp_bias", False)
        and getattr(cfg, "pretraining_tp", 1) == 1
        and getattr(cfg, "sliding_window", None) is None
    )


@dataclass
class _Layer:
    input_norm: torch.Tensor
    qkv: PackedLinear
    o: PackedLinear
    post_norm: torch.Tensor
    gate_up: PackedLinear
    down: PackedLinear


MIN_SHARED_PREFIX = 4  # tokens; shorter common prefixes are not worth a separate pass


def shared_prefix_length(prompts: list[list[int]]) -> int:
    """Tokens every prompt starts with (a chat template's system prompt), leaving each prompt one of its own."""
    if len(prompts) < 2:
        return 0
    first, limit = prompts[0], min(len(p) for p in prompts) - 1
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n if n >= MIN_SHARED_PREFIX else 0


@dataclass
class LlamaState:
    """Decode state of a batch: one KV tensor for all layers; slots [0, prefix) hold the prompts' common prefix,
    then each row's prompt is left-padded by pad[row] slots (invalid), then come its own tokens."""

    kv: torch.Tensor  # [L, 2, B, KVH, Tmax, hd]
    pad: torch.Tensor  # [B] padding slots of each row, starting at slot `prefix`
    length: int  # slots written so far (shared by all rows)
    prefix: int = 0  # slots of the shared prefix

    @property
    def batch_size(self) -> int:
        return self.kv.shape[2]


class LlamaRunner:
    """prefill / repeat / select / decode over an HF Llama-family model's weights."""

    def __init__(self, model: Any, compute_dtype: torch.dtype | None = None):
        self.model = model
        self.compute_dtype = compute_dtype
        cfg = model.config
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.eps = cfg.rms_norm_eps
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        self._signature = None
        self.refresh()

    # -- weights -------------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Re-fuse and re-pack the weights if the model's parameters changed since the last call (or `force`)."""
        signature = parameter_signature(self.model)
        if signature == self._signature and not force:
            return
        with torch.no_grad():
            body = self.model.model
            self.dtype = self.compute_dtype or body.embed_tokens.weight.dtype
            # the table itself, not a cast copy (a 49k-row table is 113 MB in fp32): rows are rounded to the
            # compute dtype when looked up
            self.embed = body.embed_tokens.weight.detach()
            self.device = self.embed.device
            # CPU batched matmuls over a bf16 cache slice copy it first (several times slower than fp32 here), and
            # the cache is small next to the weights: keep it, and decode attention, in fp32 on CPUs.
            self.cache_dtype = torch.float32 if self.device.type == "cpu" else self.dtype
            self.layers = [self._pack_layer(layer) for layer in body.layers]
            self.final_norm = body.norm.weight.detach().float()
            self.head = PackedLinear(self._cast(self.model.get_output_embeddings().weight))
            rotary = body.rotary_emb
            self.inv_freq = rotary.inv_freq.detach().float()
            self.rope_scale = float(getattr(rotary, "attention_scaling", 1.0))
        self._signature = signature

    def _cast(self, t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.detach().to(self.dtype)

    def _pack_layer(self, layer: Any) -> _Layer:
        att, mlp = layer.self_attn, layer.mlp
        heads = (self.n_heads, self.n_kv, None)
        projections = (att.q_proj, att.k_proj, att.v_proj)
        qkv_w = torch.cat([self._pair_rotary_halves(p.weight, n) for p, n in zip(projections, heads)])
        qkv_b = None
        if att.q_proj.bias is not None:
            qkv_b = torch.cat([self._pair_rotary_halves(p.bias, n) for p, n in zip(projections, heads)])
        return _Layer(
            input_norm=layer.input_layernorm.weight.detach().float(),
            qkv=PackedLinear(self._cast(qkv_w), self._cast(qkv_b)),
            o=PackedLinear(self._cast(att.o_proj.weight), self._cast(att.o_proj.bias)),
            post_norm=layer.post_attention_layernorm.weight.detach().float(),
            gate_up=PackedLinear(self._cast(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))),
            down=PackedLinear(self._cast(mlp.down_proj.weight)),
        )

    def _pair_rotary_halves(self, w: torch.Tensor, heads: int | None) -> torch.Tensor:
        """Rows of each head reordered from (x_0..x_{hd/2-1}, x_{hd/2}..) to (x_0, x_{hd/2}, x_1, ...); None: as is."""
        if heads is None:
            return w
        return w.view(heads, 2, self.head_dim // 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)

    # -- pieces --------------------------------------------------------------------------------------
    def _norm(self, x: torch.Tensor, weight: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """HF's LlamaRMSNorm in fp32 (weight fp32), cast to `dtype` (default: x's) for the next matmul."""
        return torch.rms_norm(x.float(), weight.shape, weight, self.eps).to(dtype or x.dtype)

    def _rope(self, positions: torch.Tensor) -> torch.Tensor:
        """positions [...] -> the rotation of each pair, scale * e^(i pos f) [..., hd/2] complex64."""
        angles = positions[..., None].float() * self.inv_freq
        return torch.polar(torch.full_like(angles, self.rope_scale), angles)

    @staticmethod
    def _rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        """x [..., heads, hd] with paired halves (any float dtype), rotation [..., hd/2] -> fp32 [..., heads, hd]"""
        pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
        return torch.view_as_real(pairs * rotation.unsqueeze(-2)).flatten(-2)

    def _mlp(self, layer: _Layer, h: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """h + MLP(norm(h)), the MLP's input cast to `dtype` (default: h's)."""
        gate, up = layer.gate_up(self._norm(h, layer.post_norm, dtype)).chunk(2, dim=-1)
        return layer.down.add_to(h, F.silu(gate) * up)

    def _split_qkv(self, qkv: torch.Tensor):
        """[..., (H + 2 KVH) hd] -> q [..., H, hd], k, v [..., KVH, hd]"""
        hd, h, kv = self.head_dim, self.n_heads, self.n_kv
        q, k, v = qkv.split([h * hd, kv * hd, kv * hd], dim=-1)
        shape = qkv.shape[:-1]
        return q.view(*shape, h, hd), k.view(*shape, kv, hd), v.view(*shape, kv, hd)

    # -- runner interface ----------------------------------------------------------------------------
    def new_state(self, batch_size: int, max_len: int, pad: torch.Tensor, prefix: int = 0) -> LlamaState:
        kv = torch.empty(len(self.layers), 2, batch_size, self.n_kv, max_len, self.head_dim, dtype=self.cache_dtype,
                         device=self.device)
        return LlamaState(kv=kv, pad=pad.to(self.device), length=0, prefix=prefix)

    def prefill(self, prompts: list[list[int]], max_len: int) -> tuple[LlamaState, torch.Tensor]:
        """Batched prompt pass: the prompts' common prefix runs once, then the left-padded rest of every prompt.
        -> state, logits of each prompt's last token [P, V]"""
        c = shared_prefix_length(prompts)
        lengths = torch.tensor([len(p) - c for p in prompts])
        S = int(lengths.max())
        pad = (S - lengths).to(self.device)  # [P]
        ids = torch.zeros(len(prompts), S, dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, S - len(p) + c :] = torch.tensor(p[c:], dtype=torch.long)
        state = self.new_state(len(prompts), max_len, pad, prefix=c)
        if c:
            prefix = torch.tensor([prompts[0][:c]], dtype=torch.long, device=self.device)
            causal = torch.ones(c, c, dtype=torch.bool, device=self.device).tril()[None, None]
            self._prefill_block(state, prefix, torch.arange(c, device=self.device)[None], causal)
        slots = torch.arange(c + S, device=self.device)
        query_slots = slots[c:]
        positions = (query_slots[None, :] - pad[:, None]).clamp(min=c)  # [P, S]
        padding = (slots[None, :] >= c) & (slots[None, :] < c + pad[:, None])  # [P, c+S]
        causal = slots[None, :] <= query_slots[:, None]  # [S, c+S]
        # Padding queries see themselves only, so no row is fully masked (which would give NaNs).
        mask = (causal[None] & ~padding[:, None, :]) | (slots[None, :] == query_slots[:, None])[None]  # [P, S, c+S]
        h = self._prefill_block(state, ids.to(self.device), positions, mask[:, None])
        return state, self.head(self._norm(h[:, -1], self.final_norm))

    def _prefill_block(self, state: LlamaState, ids: torch.Tensor, positions: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
        """Run ids [R, S] (R = 1 broadcasts to every row) at slots [length, length + S) of the cache, attending
        to all earlier slots under mask [R, 1, S, length + S].  -> final hidden states [R, S, D]"""
        start, S = state.length, ids.shape[1]
        rotation = self._rope(positions)  # [R, S, hd/2]
        h = self.embed[ids].to(self.dtype)  # [R, S, D]
        for i, layer in enumerate(self.layers):
            q, k, v = self._split_qkv(layer.qkv(self._norm(h, layer.input_norm)))
            q = self._rotate(q, rotation).to(self.dtype).transpose(1, 2)  # [R, H, S, hd]
            k = self._rotate(k, rotation).to(self.dtype).transpose(1, 2)  # [R, KVH, S, hd]
            v = v.transpose(1, 2)
            state.kv[i, 0, :, :, start : start + S] = k
            state.kv[i, 1, :, :, start : start + S] = v
            if start:  # earlier slots (the shared prefix) come from the cache
                k = state.kv[i, 0, :, :, : start + S].to(q.dtype)
                v = state.kv[i, 1, :, :, : start + S].to(q.dtype)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=self.n_kv != self.n_heads)
            h = layer.o.add_to(h, att.transpose(1, 2).reshape(att.shape[0], S, -1))
            h = self._mlp(layer, h)
        state.length = start + S
        return h

    def repeat(self, state: LlamaState, n: int) -> LlamaState:
        if n == 1:
            return state
        return LlamaState(state.kv.repeat_interleave(n, dim=2), state.pad.repeat_interleave(n), state.length,
                          state.prefix)

    def select(self, state: LlamaState, rows: torch.Tensor) -> LlamaState:
        """Keep only `rows`; copies just the written part of the cache."""
        rows = rows.to(self.device)
        kv = torch.empty(*state.kv.shape[:2], len(rows), *state.kv.shape[3:], dtype=state.kv.dtype, device=self.device)
        kv[..., : state.length, :] = state.kv[:, :, rows, :, : state.length]
        return LlamaState(kv, state.pad[rows], state.length, state.prefix)

    def decode(self, state: LlamaState, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per row.  tokens [B] -> next-token logits [B, V]

        The residual stream, RoPE and attention stay fp32 (cheap at one token per row); only the matmul inputs
        are cast to the compute dtype.
        """
        B, t = tokens.shape[0], state.length
        if t >= state.kv.shape[4]:
            raise RuntimeError(f"KV cache full ({state.kv.shape[4]} slots)")
        H, KVH, hd, dt, cache_dt = self.n_heads, self.n_kv, self.head_dim, self.dtype, self.cache_dtype
        G, n_qk = H // KVH, (H + KVH) * hd
        rotation = self._rope(t - state.pad)  # [B, hd/2]
        slots = torch.arange(t + 1, device=self.device)[None, :]
        invalid = (slots >= state.prefix) & (slots < state.prefix + state.pad[:, None])  # [B, t+1] padding
        bias = torch.zeros(B, 1, t + 1, dtype=cache_dt, device=self.device).masked_fill_(invalid[:, None], float("-inf"))
        bias = bias.repeat_interleave(KVH, dim=0)  # [B*KVH, 1, t+1]
        scale = hd**-0.5
        h = self.embed[tokens.to(self.device)].to(dt).float()  # [B, D]
        for i, layer in enumerate(self.layers):
            qkv = layer.qkv(self._norm(h, layer.input_norm, dt))  # [B, (H + 2 KVH) hd]
            qk = self._rotate(qkv[:, :n_qk].view(B, -1, hd), rotation)  # [B, H + KVH, hd] fp32
            keys, values = state.kv[i, 0], state.kv[i, 1]  # [B, KVH, Tmax, hd]
            keys[:, :, t] = qk[:, H:]
            values[:, :, t] = qkv[:, n_qk:].view(B, KVH, hd)
            # One query per row: a KV head's query group fits in the "query length" axis.  [B*KVH, G, hd]
            q = qk[:, :H].reshape(B * KVH, G, hd).to(cache_dt)
            k_t = keys[:, :, : t + 1].reshape(B * KVH, t + 1, hd).transpose(1, 2)  # views of the cache
            v = values[:, :, : t + 1].reshape(B * KVH, t + 1, hd)
            att = torch.bmm(torch.softmax(torch.baddbmm(bias, q, k_t, alpha=scale), dim=-1), v)  # [B*KVH, G, hd]
            h = self._mlp(layer, layer.o.add_to(h, att.view(B, H * hd).to(dt)), dt)
        state.length = t + 1
        return self.head(self._norm(h, self.final_norm, dt))
