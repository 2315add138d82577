"""One real batch, two trainers: r1lab's RL stage and TRL's `GRPOTrainer` make the same update.

Both sides start from the same small Llama (saved once, loaded by each trainer, as a user would) and see one
rollout batch: 3 prompts of different lengths x 4 completions, some ending in EOS, some cut at the length limit,
one that is EOS alone, and tokens after EOS in what "generation" returned (TRL's own EOS masking must drop
them; r1lab's engine stops at EOS). Generation is the only part replaced: TRL's model `generate` returns the
fixed token ids, r1lab's sampler the same ids as `Completion`s. Everything after it is each trainer's own code:
prompt tokenisation, rewards (one function both sides call on the decoded text), advantages, masks, reference
and old log-probs, the loss and its backward. r1lab's side runs `RLStage.next_batch` and the shared loop's
`accumulate_gradients`; TRL's runs `_generate_and_score_completions` and `compute_loss`.

The TRL options of each case are translated into r1lab config by the table in docs/TRL.md, read here, so the
documented mapping and the tested one cannot drift apart. With `num_iterations` 2 both models then take the same
parameter step and the second pass over the batch is compared too: ratios != 1, with clipping on both sides.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from rl_toy import char_tokenizer

from r1lab.algo import get_preset
from r1lab.engine.params import Completion
from r1lab.recipe.trl_objective import trl_objective
from r1lab.train.core.loop import accumulate_gradients
from r1lab.train.rl import RLConfig, RLStage, frozen_copy

trl = pytest.importorskip("trl")

DOC = Path(__file__).resolve().parents[2] / "docs" / "TRL.md"
CHARS = "abc?\n<>/think"
G, MAX_NEW, TEMPERATURE = 4, 16, 0.9
PROMPTS = ["a?", "bb??ab", "c"]  # rendered as "<prompt>\n<think>\n": 9, 13 and 8 tokens
# Completions per prompt as text, one token per character; "$" is EOS, "#" a token written after EOS (TRL must
# mask it; generation pads every row to MAX_NEW after that). A completion without "$" is cut at the limit.
COMPLETIONS = {
    "a?": ["aab</think>$##", "abc" * 5 + "a", "$#", "ba$#"],
    "bb??ab": ["bbb$", "a</think>a$", "c" * MAX_NEW, "a" * MAX_NEW],
    "c": ["ab$", "ab$", "ab$", "ab$"],  # a zero-spread group: advantage exactly 0 on both sides
}
PARAM_STEP = 0.05  # std of the shared parameter step between the two passes of num_iterations=2


def fixture_reward(completions, **_) -> list[float]:
    """Share of 'a' plus 0.5 for a closed think block: non-binary, so the std scaling matters."""
    return [t.count("a") / max(len(t), 1) + 0.5 * ("</think>" in t) for t in completions]


# ---- the documented mapping ----------------------------------------------------------------------------------
def mapping_rows() -> list[tuple[str, str]]:
    """(TRL cell, r1lab cell) of every row between the trl-mapping markers of docs/TRL.md."""
    text = DOC.read_text()
    block = text.split("<!-- trl-mapping:begin", 1)[1].split("<!-- trl-mapping:end", 1)[0]
    rows = []
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and _pairs(cells[1]) and (cells[0].startswith("(") or len(_pairs(cells[0])) == 1):
            rows.append((cells[0], cells[1]))
    return rows


def _pairs(cell: str) -> list[tuple[str, str]]:
    """The `key: value` pairs written in a table cell."""
    return [tuple(s.strip() for s in m.split(":", 1)) for m in re.findall(r"`([^`:]+:[^`]+)`", cell)]


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)


def translate(trl_options: dict[str, Any]) -> dict[str, Any]:
    """r1lab overrides (dotted keys) for TRL GRPOConfig options, by the table: rows apply in table order, a
    one-letter value (G, L, β, ...) carries the TRL number over, a parenthesised TRL cell is an implementation constant."""
    out: dict[str, Any] = {}
    used = set()
    for trl_cell, r1_cell in mapping_rows():
        if trl_cell.startswith("("):
            out.update({k: _value(v) for k, v in _pairs(r1_cell)})
            continue
        ((key, written),) = _pairs(trl_cell)
        if key not in trl_options:
            continue
        placeholder = len(written) == 1 and written.isalpha()  # a letter standing for the user's number
        if not placeholder and _value(written) != trl_options[key]:
            continue
        used.add(key)
        for k, v in _pairs(r1_cell):
            out[k] = trl_options[key] if v == written and placeholder else _value(v)
    missing = set(trl_options) - used
    assert not missing, f"docs/TRL.md has no row for TRL option(s) {sorted(missing)}"
    return out


def r1lab_config(out_dir: Path, trl_options: dict[str, Any]) -> RLConfig:
    tree: dict[str, Any] = {
        "preset": "trl_default",
        "rollout": {"prompts_per_step": len(PROMPTS)},
        "data": {"template": "plain", "think_prefill": True},
        "rewards": [{"name": "fixture_reward"}],
        "train": {"out_dir": str(out_dir), "seed": 0, "precision": "fp32", "progress": False,
                  "tensorboard": False},
    }
    for dotted, value in translate(trl_options).items():
        node = tree
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return RLConfig.model_validate(tree)


# ---- the shared batch ----------------------------------------------------------------------------------------
def token_ids(tok, text: str) -> list[int]:
    """One token per character of the fixture text ("$" EOS, "#" a token after EOS)."""
    special = {"$": tok.eos_token_id, "#": tok.convert_tokens_to_ids("c")}
    return [special[ch] if ch in special else tok.convert_tokens_to_ids(ch) for ch in text]


def generated(tok, text: str) -> list[int]:
    """The completion as an r1lab Completion carries it: up to and including EOS, nothing after."""
    ids = token_ids(tok, text)
    return ids[: ids.index(tok.eos_token_id) + 1] if tok.eos_token_id in ids else ids


class FixedSampler:
    """r1lab's sampler interface returning the fixture's completions for each rendered prompt."""

    def __init__(self, tok, by_prompt: dict[str, list[str]]):
        self.tok, self.by_prompt, self.seen = tok, by_prompt, []

    def generate(self, prompts, params):
        assert params.n == G and params.max_new_tokens == MAX_NEW and params.temperature == TEMPERATURE
        out = []
        for prompt in prompts:
            self.seen.append(prompt)
            prompt_ids = list(self.tok(prompt).input_ids)
            group = []
            for text in self.by_prompt[prompt]:
                ids = generated(self.tok, text)
                ended = ids[-1] == self.tok.eos_token_id
                assert ended or len(ids) == MAX_NEW, text
                group.append(Completion(text=self.tok.decode(ids[:-1] if ended else ids), token_ids=ids,
                                        logprobs=[], finish_reason="stop" if ended else "length",
                                        prompt_token_ids=prompt_ids))
            out.append(group)
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tokenizer, the saved start model, and the rendered prompts with their completions."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer(CHARS)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
                      tie_word_embeddings=False)
    model_dir = tmp_path_factory.mktemp("start_model")
    LlamaForCausalLM(cfg).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    rendered = {f"{p}\n<think>\n": COMPLETIONS[p] for p in PROMPTS}
    return tok, model_dir, rendered


# ---- the two trainers ----------------------------------------------------------------------------------------
def run_r1lab(world, cfg: RLConfig, steps: list) -> dict[str, Any]:
    """Rollout + one `accumulate_gradients` per pass; `steps[0]` moves the policy away from the reference
    before the rollout, `steps[i]` between passes i and i + 1."""
    from transformers import AutoModelForCausalLM

    tok, model_dir, rendered = world
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).train()
    sampler = FixedSampler(tok, rendered)
    records = [{"id": str(i), "prompt": p, "answer": "", "task": "toy", "metadata": {}} for i, p in enumerate(PROMPTS)]
    obj = cfg.objective_config
    reference = frozen_copy(model) if obj.needs_reference else None  # the start model, as TRL loads it
    steps[0](model)  # the policy has trained a while: the KL to the reference is not zero
    stage = RLStage(cfg, model, tok, records, sampler=sampler, reward_fns={"fixture_reward": fixture_reward},
                    reference=reference)
    passes = []
    for step in range(obj.mu):
        if step:
            steps[step](model)
        model.zero_grad(set_to_none=True)
        metrics = accumulate_gradients(model, stage, [stage.next_batch(step, 0)], precision="fp32")
        passes.append({"loss": metrics["loss"], "clip": metrics["clip_ratio/region_mean"],
                       "grads": {n: p.grad.detach().clone() for n, p in model.named_parameters()}})
    b = stage.buffer
    return {"order": sampler.seen, "rewards": b["rewards"], "advantages": b["advantages"], "mask": b["comp_mask"],
            "tokens": b["comp_mask"].sum(), "old_logp": b.get("old_logp"), "ref_logp": b.get("ref_logp"),
            "passes": passes}


def run_trl(world, trl_options: dict[str, Any], order: list[str], steps: list, out_dir: Path) -> dict[str, Any]:
    """TRL's scoring path on the same prompts (in r1lab's visiting order) with generation replaced."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    tok, model_dir, rendered = world
    args = GRPOConfig(output_dir=str(out_dir), per_device_train_batch_size=len(order) * G, bf16=False,
                      use_cpu=True, report_to=[], save_strategy="no", **trl_options)
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=[fixture_reward], args=args, processing_class=tok,
                          train_dataset=Dataset.from_dict({"prompt": order}))
    model = trainer.model.train()
    steps[0](model)  # as on r1lab's side; TRL's reference model was loaded from the start model's directory
    trainer.current_gradient_accumulation_steps = 1

    raw = [token_ids(tok, text) for p in order for text in rendered[p]]
    raw = torch.tensor([ids + [tok.pad_token_id] * (MAX_NEW - len(ids)) for ids in raw])

    def fixed_generate(input_ids, attention_mask=None, **_):
        assert input_ids.shape[0] == raw.shape[0]
        return torch.cat([input_ids, raw], dim=1)

    model.generate = fixed_generate
    captured = {}
    calculate = trainer._calculate_rewards

    def spy(*a, **kw):
        captured["per_func"] = calculate(*a, **kw)
        return captured["per_func"]

    trainer._calculate_rewards = spy
    batch = trainer._generate_and_score_completions([{"prompt": p} for p in order for _ in range(G)])
    passes = []
    for step in range(trl_options.get("num_iterations", 1)):
        if step:
            steps[step](model)
        model.zero_grad(set_to_none=True)
        trainer._metrics["train"].clear()
        loss = trainer.compute_loss(model, batch)
        loss.backward()
        passes.append({"loss": loss.item(), "clip": trainer._metrics["train"]["clip_ratio/region_mean"][-1],
                       "grads": {n: p.grad.detach().clone() for n, p in model.named_parameters()}})
    return {"rewards": captured["per_func"][:, 0], "advantages": batch["advantages"],
            "mask": batch["completion_mask"], "tokens": batch["num_items_in_batch"],
            "old_logp": batch.get("old_per_token_logps"), "ref_logp": batch.get("ref_per_token_logps"),
            "passes": passes}


def shared_steps(n: int) -> list:
    """n parameter steps applied identically to both models (what earlier training, and one optimizer step
    between passes, would do)."""
    def make(i):
        def step(model):
            g = torch.Generator().manual_seed(1000 + i)
            with torch.no_grad():
                for name, p in sorted(model.named_parameters()):
                    p.add_(torch.randn(p.shape, generator=g) * PARAM_STEP)
        return step
    return [make(i) for i in range(n)]


# ---- comparison with the quantity named ----------------------------------------------------------------------
def same(name: str, ours, theirs, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    ours = torch.as_tensor(ours, dtype=torch.float64)
    theirs = torch.as_tensor(theirs, dtype=torch.float64)
    if ours.shape != theirs.shape:
        raise AssertionError(f"{name}: shape {tuple(ours.shape)} (r1lab) vs {tuple(theirs.shape)} (TRL)")
    if not torch.allclose(ours, theirs, rtol=rtol, atol=atol):
        worst = (ours - theirs).abs().max().item()
        raise AssertionError(f"{name}: r1lab and TRL differ (max abs difference {worst:.3g})\n"
                             f"r1lab {ours.tolist()}\nTRL   {theirs.tolist()}")


def same_gradients(label: str, ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys(), f"{label}: parameter names differ"
    for name in ours:
        a, b = ours[name].double().flatten(), theirs[name].double().flatten()
        norm = max(float(b.norm()), 1e-30)
        cosine = float(a @ b) / max(float(a.norm()) * norm, 1e-30)
        rel = float((a - b).norm()) / norm
        if cosine < 0.99999 or rel > 1e-4:
            raise AssertionError(f"{label}: gradient of {name}: cosine {cosine:.7f}, relative difference {rel:.2e}")


def compare(ours: dict, theirs: dict, trl_options: dict) -> None:
    same("rewards", ours["rewards"], theirs["rewards"])
    same("advantages", ours["advantages"], theirs["advantages"], rtol=1e-5, atol=1e-5)
    same("completion mask", ours["mask"], theirs["mask"], rtol=0, atol=0)
    same("token count", ours["tokens"], theirs["tokens"], rtol=0, atol=0)
    live = ours["mask"] > 0
    for key, label in (("ref_logp", "reference log-probs"), ("old_logp", "old log-probs")):
        if theirs[key] is not None or ours[key] is not None:
            if theirs[key] is None or ours[key] is None:
                raise AssertionError(f"{label}: computed by one trainer only "
                                     f"(r1lab: {ours[key] is not None}, TRL: {theirs[key] is not None})")
            same(label, ours[key][live], theirs[key][live], rtol=1e-5, atol=1e-5)
    assert len(ours["passes"]) == len(theirs["passes"]) == trl_options.get("num_iterations", 1)
    for i, (a, b) in enumerate(zip(ours["passes"], theirs["passes"])):
        same(f"loss (pass {i + 1})", a["loss"], b["loss"], rtol=1e-5, atol=1e-7)
        same(f"clipped-token fraction (pass {i + 1})", a["clip"], b["clip"], rtol=1e-6, atol=1e-6)
        same_gradients(f"pass {i + 1}", a["grads"], b["grads"])


# ---- the cases -----------------------------------------------------------------------------------------------
BASE = {"num_generations": G, "max_completion_length": MAX_NEW, "temperature": TEMPERATURE, "epsilon": 0.2,
        "scale_rewards": "group", "use_bias_correction_kl": True, "mask_truncated_completions": False}
CASES = [
    {"loss_type": loss, "beta": beta, "num_iterations": mu}
    for loss in ("grpo", "dr_grpo", "dapo", "bnpo") for beta in (0.0, 0.04) for mu in (1, 2)
] + [
    {"loss_type": "dr_grpo", "beta": 0.0, "num_iterations": 1, "scale_rewards": "none"},  # Dr. GRPO as published
    {"loss_type": "dapo", "beta": 0.0, "num_iterations": 2, "epsilon_high": 0.28, "scale_rewards": "batch"},
    {"loss_type": "dapo", "beta": 0.0, "num_iterations": 1, "mask_truncated_completions": True},
]


def case_id(case: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items())


@pytest.fixture(scope="module")
def results(world, tmp_path_factory):
    """Both trainers on every case, computed once (a case costs well under a second)."""
    cache: dict[str, tuple] = {}

    def get(case: dict) -> tuple:
        key = case_id(case)
        if key not in cache:
            options = {**BASE, **case}
            steps = shared_steps(options["num_iterations"])
            cfg = r1lab_config(tmp_path_factory.mktemp("r1lab"), options)
            ours = run_r1lab(world, cfg, steps)
            theirs = run_trl(world, options, ours["order"], steps, tmp_path_factory.mktemp("trl"))
            cache[key] = (ours, theirs, options)
        return cache[key]

    return get


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_r1lab_update_equals_trl_update(results, case):
    ours, theirs, options = results(case)
    compare(ours, theirs, options)
    assert all(g.abs().sum() > 0 for g in ours["passes"][0]["grads"].values())  # every parameter is trained
    if options["num_iterations"] > 1:  # the second pass really is off-policy and clips on both sides
        assert 0.0 < ours["passes"][1]["clip"] < 1.0


def test_the_batch_has_every_kind_of_completion(results):
    ours, _, _ = results(CASES[0])
    lengths = ours["mask"].sum(dim=1)
    assert set(lengths.tolist()) >= {1.0, float(MAX_NEW)}  # EOS alone, and cut at the limit
    assert bool(((lengths > 1) & (lengths < MAX_NEW)).any())  # ended by EOS in between
    assert ours["advantages"].abs().gt(0).any() and ours["advantages"].eq(0).any()  # a zero-spread group
    assert len({len(p) for p in ours["order"]}) == len(PROMPTS)  # prompts of different lengths


def test_mask_truncated_completions_drops_the_cut_rows_on_both_sides(results):
    ours, theirs, _ = results(CASES[-1])
    cut = ours["mask"].sum(dim=1) == 0
    assert int(cut.sum()) == sum(1 for p in PROMPTS for t in COMPLETIONS[p] if "$" not in t)
    same("completion mask", ours["mask"], theirs["mask"], rtol=0, atol=0)


@pytest.mark.parametrize("piece", ["completion mask", "advantages", "rewards", "gradient"])
def test_the_comparison_names_a_broken_piece(results, piece):
    """The test has teeth: break one piece of r1lab's side and the comparison fails, naming it."""
    ours, theirs, options = results(CASES[0])
    broken = copy.deepcopy(ours)
    if piece == "completion mask":
        row = int(broken["mask"].sum(dim=1).argmax())
        broken["mask"][row, int(broken["mask"][row].sum()) - 1] = 0.0  # the EOS token left out of the loss
    elif piece == "advantages":
        broken["advantages"] = broken["advantages"] * (1 + 1e-3)
    elif piece == "rewards":
        broken["rewards"][0] += 0.01
    else:
        grads = broken["passes"][0]["grads"]
        grads["lm_head.weight"] *= 1.001  # one parameter's gradient 0.1% too large
    with pytest.raises(AssertionError, match=piece):
        compare(broken, theirs, options)


def test_trl_defaults_translate_to_trl_objective(world):
    """The benchmark's `trl_objective` is what the documented table makes of TRL's default GRPOConfig."""
    from trl import GRPOConfig

    d = GRPOConfig(output_dir="unused", report_to=[], use_cpu=True)
    options = {k: getattr(d, k) for k in ("loss_type", "scale_rewards", "beta", "use_bias_correction_kl",
                                          "epsilon", "num_iterations", "mask_truncated_completions")}
    assert d.epsilon_high is None and d.importance_sampling_level == "token" and d.top_entropy_quantile == 1.0
    for beta in (0.0, 0.04):
        table = r1lab_config(Path("unused"), {**options, "beta": beta}).objective_config
        spec = trl_objective(beta=beta)
        assert table == get_preset(spec["preset"], **spec["objective"]), f"beta={beta}"
