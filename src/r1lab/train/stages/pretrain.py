"""Pretraining of r1lab models: next-token + MTP + sequence-wise balance loss on a packed token stream.

The model returns the three losses (`out.loss = main + mtp + balance`); after every optimizer step the
aux-loss-free balance bias is updated (`model.update_balance_bias(gamma)`) from the routing counts of the
step, and the per-layer expert load and MaxVio are logged (`moe/load/L<i>`, `moe/max_vio`, ...).
Data: documents tokenized and concatenated into one stream, cut into `seq_len` rows, visited in a seeded
permutation per epoch; the rows of step s are a pure function of s, so resume needs no data state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from r1lab.config import StrictModel
from r1lab.data.tokenizer import load_tokenizer, train_tokenizer
from r1lab.errors import ConfigError, DataError
from r1lab.eval import evaluate
from r1lab.jsonl import read_jsonl
from r1lab.train.core.config import TrainConfig
from r1lab.train.core.loop import TrainResult, train
from r1lab.train.core.model_spec import ModelSpec, build_model
from r1lab.train.core.moe_metrics import moe_metrics
from r1lab.train.core.rng import seed_everything
from r1lab.train.stages.packing import epoch_order, global_rows, stream_rows


class CorpusConfig(StrictModel):
    """A text corpus: `.jsonl` with a `text` field per document, or `.txt` (one document per line)."""

    path: str | None = Field(None, description="corpus file (.jsonl with 'text', or .txt)")
    tokenizer: str | None = Field(None, description="tokenizer dir or tokenizer.json; None: train one on the corpus")
    vocab_size: int = Field(512, ge=300, description="size of the BPE tokenizer trained when tokenizer is None")
    seq_len: int = Field(128, ge=2, description="tokens per training row")
    batch_size: int = Field(16, ge=1, description="rows per micro-batch")


class QualityGate(StrictModel):
    """Stop pretraining once the model solves `pass_at_1` of a task's validation problems.

    On a small task a base's accuracy is a steep function of its steps (notebook entry O: one seed at 30% after
    600 steps is at 88% after 1,000), so a fixed step budget leaves seeds on both sides of the jump, and what RL
    does to them differs for that reason alone. Gating on quality starts every seed from a base of the same
    skill. The problems are the task's `validation` split, disjoint from the held-out test problems."""

    pass_at_1: float = Field(..., gt=0, le=1, description="stop at the first check reaching this pass@1")
    every: int = Field(50, ge=1, description="optimizer steps between checks")
    start: int = Field(0, ge=0, description="first step that may be checked")
    task: str | None = Field(None, description="task spec of the problems (the recipe links its own task)")
    template: str = Field("plain", description="prompt template the base is sampled with")
    split: str = Field("validation", description="split of the task the problems come from")
    size: int = Field(64, ge=1, description="problems per check")
    n: int = Field(4, ge=1, description="samples per problem")
    temperature: float = Field(0.6, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(64, ge=1)
    seed: int = Field(0, description="problem and sampling seed: the same problems and noise at every check")


class PretrainConfig(StrictModel):
    """Pretraining stage: which model, which corpus, how long; `train:` is the shared loop's config."""

    model: ModelSpec = Field(default_factory=ModelSpec)
    data: CorpusConfig = Field(default_factory=CorpusConfig)
    epochs: float = Field(1.0, gt=0, description="passes over the corpus when train.max_steps is unset")
    balance_gamma: float = Field(1e-3, ge=0, description="bias update speed of aux-loss-free balancing")
    stop_at: QualityGate | None = Field(None, description="end before the step budget once the base solves "
                                        "enough validation problems (None: always run the whole budget)")
    train: TrainConfig = Field(default_factory=TrainConfig)


def read_documents(path: str | Path) -> list[str]:
    """Documents of a `.txt` corpus (one per non-blank line) or a `.jsonl` one (its `text` fields)."""
    path = Path(path)
    if path.suffix != ".jsonl":
        if not path.is_file():
            raise DataError(f"{path}: corpus file not found")
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    docs = []
    for n, rec in read_jsonl(path, kind="corpus file").records:
        if not isinstance(rec.get("text"), str):
            raise DataError(f"{path}:{n}: expected a JSON object with a 'text' field")
        docs.append(rec["text"])
    return docs


def tokenize_documents(docs: list[str], tokenizer: Any) -> torch.Tensor:
    """One stream `[N]`: each document encoded with the tokenizer's special tokens, then concatenated."""
    ids: list[int] = []
    for doc in docs:
        ids.extend(tokenizer(doc)["input_ids"])
    return torch.tensor(ids, dtype=torch.long)


class PretrainStage:
    """Rows of a token stream; loss from the model; balance-bias update after each step."""

    def __init__(self, rows: torch.Tensor, *, batch_size: int, grad_accum: int, seed: int,
                 balance_gamma: float = 1e-3, epochs: float = 1.0, tokenizer: Any = None,
                 gate: QualityGate | None = None):
        self.rows = rows                      # [R, T]
        self.gate = gate
        self.reached: float | None = None     # validation pass@1 of the check that met the gate
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.seed = seed
        self.balance_gamma = balance_gamma
        self.tokenizer = tokenizer
        self.num_steps = max(1, math.ceil(epochs * rows.shape[0] / (batch_size * grad_accum)))
        self._orders: dict[int, torch.Tensor] = {}

    def _row(self, index: int) -> torch.Tensor:
        n = self.rows.shape[0]
        epoch, i = divmod(index, n)
        if epoch not in self._orders:
            self._orders = {epoch: epoch_order(n, self.seed, epoch)}  # keep only the current epoch
        return self.rows[self._orders[epoch][i]]

    def next_batch(self, step: int, micro: int) -> torch.Tensor:
        idx = global_rows(step, micro, self.grad_accum, self.batch_size)
        return torch.stack([self._row(i) for i in idx])   # [B, T]

    def loss_fn(self, model, input_ids: torch.Tensor):
        out = model(input_ids, labels=input_ids)
        metrics = {"ce_loss": out.main_loss.detach(), "num_tokens": input_ids.numel()}
        if out.mtp_loss is not None:
            metrics["mtp_loss"] = out.mtp_loss.detach()
        if out.balance_loss is not None:
            metrics["balance_loss"] = out.balance_loss.detach()
        return out.loss, metrics

    def after_step(self, model, step: int, metrics: dict) -> dict:
        out = {} if not hasattr(model, "update_balance_bias") else moe_metrics(
            model.update_balance_bias(self.balance_gamma))
        g = self.gate
        if g is not None and step >= g.start and step % g.every == 0:
            score = validation_pass_at_1(model, self.tokenizer, g)
            out["validation/pass@1"] = score
            if score >= g.pass_at_1:
                self.reached = score
        return out

    def should_stop(self) -> str | None:
        if self.reached is None:
            return None
        return f"validation pass@1 {self.reached:.3f} reached the gate's {self.gate.pass_at_1:.3f}"

    def state_dict(self) -> dict[str, Any]:
        return {"reached": self.reached}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reached = state.get("reached")

    def save_artifacts(self, directory: Path) -> None:
        if self.tokenizer is not None and hasattr(self.tokenizer, "save_pretrained"):
            self.tokenizer.save_pretrained(str(directory))


def validation_pass_at_1(model: Any, tokenizer: Any, gate: QualityGate) -> float:
    """pass@1 of `model` on the gate's problems; the global RNG is left as it was, so training is unchanged (the
    sampler itself switches the model to eval mode and back)."""
    with torch.random.fork_rng():  # whatever evaluation draws from the CPU and CUDA generators
        result = evaluate(model, gate.task, n=gate.n, temperature=gate.temperature, top_p=gate.top_p,
                          max_new_tokens=gate.max_new_tokens, template=gate.template, split=gate.split,
                          size=gate.size, seed=gate.seed, tokenizer=tokenizer, name="quality gate")
    return float(result["overall"]["pass@1"])


def pretrain(cfg: PretrainConfig, *, tokens: torch.Tensor | None = None, tokenizer: Any = None,
             model: Any = None) -> TrainResult:
    """Pretrain per `cfg`. `tokens`/`tokenizer`/`model` may be passed in directly (tests, pipelines)."""
    if cfg.stop_at is not None and cfg.stop_at.task is None:
        raise ConfigError("pretrain: stop_at.task is unset (the task whose validation problems gate the base)")
    seed_everything(cfg.train.seed)
    if tokenizer is None and cfg.data.tokenizer is not None:
        tokenizer = load_tokenizer(cfg.data.tokenizer)
    saved = Path(cfg.train.out_dir) / "checkpoint"
    if tokenizer is None and cfg.train.resume and (saved / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(str(saved))  # the tokenizer trained by the interrupted run
    if tokens is None:
        if cfg.data.path is None:
            raise DataError("pretrain: set data.path (a .jsonl or .txt corpus)")
        docs = read_documents(cfg.data.path)
        if tokenizer is None:
            tokenizer = train_tokenizer(docs, vocab_size=cfg.data.vocab_size)
        tokens = tokenize_documents(docs, tokenizer)
    if model is None:
        model, tokenizer = build_model(cfg.model, tokenizer)
    stage = PretrainStage(stream_rows(tokens, cfg.data.seq_len), batch_size=cfg.data.batch_size,
                          grad_accum=cfg.train.grad_accum, seed=cfg.train.seed,
                          balance_gamma=cfg.balance_gamma, epochs=cfg.epochs, tokenizer=tokenizer,
                          gate=cfg.stop_at)
    return train(model, stage, cfg.train, run_config={"stage": "pretrain", **cfg.model_dump(mode="json")})
