"""`RecipeConfig`: one YAML for the whole R1 recipe, composed of the stages' own typed configs.

Each stage section is the config its trainer already takes (PretrainConfig, SFTConfig, RLConfig,
RejectionConfig, DistillConfig); the recipe fills in what links stages — output directories, which
checkpoint a stage starts from, which dataset file it reads — so a YAML only says what differs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from r1lab.config import StrictModel
from r1lab.data.traces import TraceSettings
from r1lab.sampling.rejection import RejectionConfig
from r1lab.train.core.model_spec import ModelSpec
from r1lab.train.rl import RLConfig
from r1lab.train.stages.distill import DistillConfig
from r1lab.train.stages.pretrain import PretrainConfig
from r1lab.train.stages.sft import SFTConfig


class TaskSection(StrictModel):
    """The verifiable task every stage trains and is evaluated on (train/test splits never overlap)."""

    spec: str = Field("arith", description="task spec for r1lab.data.load_task")
    template: str = Field("plain", description="prompt template of the main model: plain (tiny models), r1, chat")
    student_template: str = Field("plain", description="prompt template of the student (its own tiny BPE "
                                  "tokenizer has no chat template)")
    seed: int = Field(0, description="problem-generation seed")


class DataSection(TraceSettings):
    """The synthetic corpus (pretraining), cold-start traces (SFT) and tokenizer of the tiny models; how the
    worked solutions are written comes from `TraceSettings`."""

    corpus_size: int = Field(6000, ge=1, description="pretraining documents (problems x one styled solution)")
    style_mix: dict[str, float] = Field(default_factory=lambda: {"direct": 0.4, "cot": 0.3, "reflect": 0.3})
    cold_start_size: int = Field(500, ge=0, description="cold-start chain-of-thought SFT records written by "
                                 "program (0: only the model's own samples, see `cold_start_data`)")
    cold_start_mix: dict[str, float] = Field(default_factory=lambda: {"cot": 0.5, "reflect": 0.5})
    rl_prompts: int = Field(2000, ge=1, description="training prompts for the RL stages")
    vocab_size: int = Field(400, ge=300, description="BPE vocabulary of the tiny tokenizer")


class EvalSection(StrictModel):
    """R1 evaluation protocol on held-out problems (docs/RL.md §12)."""

    size: int = Field(100, ge=1, description="held-out problems")
    n: int = Field(8, ge=1, description="samples per problem (pass@1 = mean over them)")
    k: int | None = Field(None, description="maj@k window (None: n)")
    temperature: float = Field(0.6, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(96, ge=1)
    examples: int = Field(2, ge=0, description="example completions per checkpoint in the report")
    group_by: str | None = Field("difficulty", description="metadata key of a per-group breakdown (a proof's "
                                 "depth); `difficulty`: the task's difficulty bucket (thinking time per bucket)")
    fallbacks: list[str] | None = Field(None, description="answer extraction when a completion has no <answer> "
                                        "block (None: the evaluator's default); [answer_is, last_number] grades a "
                                        "chat model that states its result in prose")
    extra_tasks: list[str] = Field(default_factory=list, description="more held-out tasks for every checkpoint "
                                   "(e.g. a deeper proof depth than training saw: generalisation)")


class ColdStartSamples(RejectionConfig):
    """R1's cold start from the model's own outputs: sample a checkpoint, keep verified, well-formed traces (the
    acceptance rule in `accept`), then SFT on them together with `data.cold_start_size` programmatic traces."""

    source: Literal["r1_zero", "base"] = Field("r1_zero", description="checkpoint to sample: R1-Zero's outputs "
                                                "(R1 §2.3.1) or the base's")

    @model_validator(mode="after")
    def _shots_have_a_source(self) -> "ColdStartSamples":
        return self  # few_shot without few_shot_path: the recipe's programmatic worked solutions are shown


class RecipeConfig(StrictModel):
    """The DeepSeek-R1 recipe at small scale: base → R1-Zero; cold start → RL → rejection SFT → RL; distillation."""

    name: str = Field("tiny", description="run name (default output directory runs/<name>)")
    seed: int = Field(0, description="seed of every stage (each stage derives its generators from it)")
    task: TaskSection = Field(default_factory=TaskSection)
    data: DataSection = Field(default_factory=DataSection)
    model: ModelSpec = Field(default_factory=ModelSpec, description="the main (V3 MLA+MoE+MTP) model")
    student: ModelSpec = Field(default_factory=lambda: ModelSpec(
        preset="tiny", overrides={"n_layers": 2, "n_dense_layers": 2, "mtp_depth": 0}),
        description="the smaller dense student of the distillation comparison")
    base: PretrainConfig = Field(default_factory=PretrainConfig)
    r1_zero: RLConfig = Field(default_factory=RLConfig)
    cold_start_data: ColdStartSamples | None = Field(None, description="cold start from the model's own "
                                                     "verified samples (None: programmatic traces only)")
    cold_start: SFTConfig = Field(default_factory=SFTConfig)
    r1_rl: RLConfig = Field(default_factory=RLConfig)
    rejection: RejectionConfig = Field(default_factory=RejectionConfig)
    r1_sft: SFTConfig = Field(default_factory=SFTConfig)
    r1: RLConfig = Field(default_factory=RLConfig)
    distill_data: RejectionConfig = Field(default_factory=RejectionConfig)
    student_base: PretrainConfig = Field(default_factory=PretrainConfig)
    student_distill: DistillConfig = Field(default_factory=DistillConfig)
    student_rl: RLConfig = Field(default_factory=RLConfig)
    eval: EvalSection = Field(default_factory=EvalSection)
    progress: bool = Field(True, description="progress bars in every stage")
    stages: list[str] | None = Field(None, description="the stages to run (default: all, in recipe order); each "
                                     "stage's inputs must be among them, e.g. [data, base, r1_zero, eval]")

    @model_validator(mode="after")
    def _cold_start_has_data(self) -> "RecipeConfig":
        if self.data.cold_start_size == 0 and self.cold_start_data is None:
            raise ValueError("data.cold_start_size: 0 leaves the cold start without data; set cold_start_data "
                             "(sample the model's own traces) or write some traces by program")
        return self
