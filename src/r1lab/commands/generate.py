"""`r1lab generate` and `r1lab chat`: sample from any model the engine runs, streaming tokens as they come."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Optional

import typer

TEMPLATES = ("auto", "none", "plain", "r1", "chat")


class TextStream:
    """Writes one row's text to a stream as tokens arrive (whole-text re-decode, so multi-token characters and
    byte-level merges print correctly); stop/EOS tokens are not printed."""

    def __init__(self, tokenizer: Any, hidden_ids: set[int], out: Any = None, row: int = 0):
        self.tokenizer, self.hidden_ids, self.out, self.row = tokenizer, hidden_ids, out, row
        self.ids: list[int] = []
        self.printed = ""

    def __call__(self, rows: list[int], tokens: list[int]) -> None:
        if self.row not in rows:
            return
        token = tokens[rows.index(self.row)]
        if token in self.hidden_ids:
            return
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for the rest
            return
        out = self.out or sys.stdout
        out.write(text[len(self.printed):])
        out.flush()
        self.printed = text


def render_prompt(text: str, template: str, tokenizer: Any) -> str:
    if template == "none":
        return text
    from r1lab.data import get_template

    if template == "auto":
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            return get_template("chat", think_prefill=False).render(text, tokenizer)
        return text
    return get_template(template).render(text, tokenizer)


def build_sampler(model_name: str, backend: str, threads: int):
    from r1lab.engine import make_sampler
    from r1lab.sources import load_model

    model, tokenizer = load_model(model_name)
    if tokenizer is None:
        from r1lab.errors import R1labError

        raise R1labError(f"{model_name}: no tokenizer files next to the weights; text prompts need one")
    return make_sampler(model, tokenizer, backend=backend, threads=threads or None)


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        model: str = typer.Option(..., "--model", "-m", help="checkpoint directory or a model source (smollm2-135m)"),
        prompt: list[str] = typer.Option(..., "--prompt", "-p", help="prompt text (repeat for a batch)"),
        n: int = typer.Option(1, help="samples per prompt"),
        max_new_tokens: int = typer.Option(128, "--max-new-tokens"),
        temperature: float = typer.Option(0.7, help="0 = greedy"),
        top_p: float = typer.Option(1.0, "--top-p"),
        top_k: int = typer.Option(0, "--top-k"),
        min_p: float = typer.Option(0.0, "--min-p"),
        stop: Optional[list[str]] = typer.Option(None, "--stop", help="stop string (repeatable)"),
        seed: int = typer.Option(0),
        template: str = typer.Option("auto", help="auto (chat template if the tokenizer has one) | none | plain | r1 | chat"),
        backend: str = typer.Option("auto", help="auto | hf | vllm"),
        threads: int = typer.Option(0, help="torch threads while sampling (0 = torch's default; 1 is faster on a busy machine)"),
        stream: bool = typer.Option(True, "--stream/--no-stream", help="print tokens as they are produced (one prompt, n=1)"),
        as_json: bool = typer.Option(False, "--json", help="print completions, token ids and log-probs as JSON"),
    ) -> None:
        """Sample completions for one or more prompts."""
        from r1lab.engine import SamplingParams
        from r1lab.errors import ConfigError

        if template not in TEMPLATES:
            raise ConfigError(f"--template: expected one of {', '.join(TEMPLATES)}, got {template!r}")
        sampler = build_sampler(model, backend, threads)
        params = SamplingParams(n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                top_k=top_k, min_p=min_p, stop=list(stop or []), seed=seed)
        texts = [render_prompt(p, template, sampler.tokenizer) for p in prompt]
        streaming = stream and not as_json and len(texts) == 1 and n == 1 and hasattr(sampler, "eos_ids")
        callback = TextStream(sampler.tokenizer, sampler.eos_ids | set(params.stop_token_ids)) if streaming else None
        start = time.perf_counter()
        out = sampler.generate(texts, params, on_tokens=callback)
        seconds = time.perf_counter() - start
        if as_json:
            records = [{"prompt": p, "completions": [c.__dict__ for c in group]} for p, group in zip(prompt, out)]
            typer.echo(json.dumps(records, ensure_ascii=False, indent=1))
        elif streaming:
            typer.echo("")
        else:
            for p, group in zip(prompt, out):
                for j, c in enumerate(group):
                    typer.echo(f"=== prompt {prompt.index(p)} sample {j} ({c.finish_reason}) ===\n{c.text}")
        tokens = sum(len(c.token_ids) for group in out for c in group)
        typer.echo(f"[{tokens} tokens in {seconds:.2f} s, {tokens / max(seconds, 1e-9):.1f} tokens/s, "
                   f"{getattr(sampler, 'backend', '?')}]", err=True)

    @app.command()
    def chat(
        model: str = typer.Option(..., "--model", "-m", help="checkpoint directory or a model source (smollm2-135m)"),
        max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
        temperature: float = typer.Option(0.7),
        top_p: float = typer.Option(0.95, "--top-p"),
        system: Optional[str] = typer.Option(None, help="system message"),
        seed: int = typer.Option(0),
        backend: str = typer.Option("auto", help="auto | hf"),
        threads: int = typer.Option(0, help="torch threads while sampling (0 = torch's default)"),
    ) -> None:
        """Interactive chat (the tokenizer's chat template); streams the reply. /exit or Ctrl-D quits."""
        from r1lab.engine import SamplingParams

        sampler = build_sampler(model, backend, threads)
        tokenizer = sampler.tokenizer
        messages: list[dict] = [{"role": "system", "content": system}] if system else []
        turn = 0
        while True:
            try:
                user = input("you> ")
            except (EOFError, KeyboardInterrupt):
                typer.echo("")
                break
            if user.strip() in ("/exit", "/quit"):
                break
            if not user.strip():
                continue
            messages.append({"role": "user", "content": user})
            if getattr(tokenizer, "chat_template", None):
                prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            else:
                prompt = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant:"
            params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                    seed=seed + turn)
            typer.echo("model> ", nl=False)
            reply = sampler.generate([prompt], params, on_tokens=TextStream(tokenizer, sampler.eos_ids))[0][0]
            typer.echo("")
            messages.append({"role": "assistant", "content": reply.text})
            turn += 1
