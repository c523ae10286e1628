"""`oryx generate CHECKPOINT`: sample a continuation and show which positions ran in attention mode."""

from __future__ import annotations

from typing import Annotated

import typer


def generate(
    checkpoint: Annotated[str, typer.Argument(help="a model directory or a training out_dir")],
    prompt: Annotated[str | None, typer.Option(help="prompt text (models with a tokenizer)")] = None,
    ids: Annotated[str | None, typer.Option(help="prompt as comma-separated token ids (any model)")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=0, help="tokens to generate")] = 64,
    schedule: Annotated[str | None, typer.Option(help="mode schedule, e.g. last:16 or chunks:64:0.1 "
                                                       "(default: the model's own)")] = None,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy")] = 0.8,
    top_k: Annotated[int | None, typer.Option(min=1, help="sample among the k most likely tokens")] = 50,
    seed: Annotated[int, typer.Option(help="seed of the sampler")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16, float16")] = "auto",
) -> None:
    """Generate from a checkpoint. Tokens are printed in bold where every layer that owns two mixers
    ran them in attention mode (underlined where only some did); the attention fraction follows."""
    import torch
    from rich.console import Console
    from rich.text import Text

    from evals.loading import load_checkpoint
    from oryx.errors import OryxError

    if (prompt is None) == (ids is None):
        raise OryxError("give exactly one of --prompt TEXT or --ids 1,2,3")
    loaded = load_checkpoint(checkpoint, device=device, dtype=dtype)
    model, tokenizer = loaded.model, loaded.tokenizer
    if prompt is not None:
        if tokenizer is None:
            raise OryxError(f"{loaded.directory} has no tokenizer (trained on a synthetic task): use --ids")
        prompt_ids = tokenizer.encode(prompt)
    else:
        try:
            prompt_ids = [int(x) for x in ids.split(",") if x.strip()]
        except ValueError:
            raise OryxError(f"--ids must be comma-separated integers, got {ids!r}") from None
    if not prompt_ids:
        raise OryxError("the prompt is empty")
    x = torch.tensor([prompt_ids], device=next(model.parameters()).device)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    eos = getattr(tokenizer, "eos_id", None)
    out, modes = model.generate(x, max_new_tokens, modes=schedule, temperature=temperature, top_k=top_k,
                                eos_token_id=eos, generator=gen, return_modes=True)
    out = out[0].tolist()
    dual = model.config.dual_layers
    share = modes[dual, 0].float().mean(0) if dual else modes[:, 0].float().mean(0)   # [T + new - 1]

    text = Text()
    for pos, token in enumerate(out):
        piece = tokenizer.decode([token]) if tokenizer is not None else f"{token} "
        style = "" if pos >= share.numel() else ("bold" if share[pos] == 1 else "underline" if share[pos] > 0 else "")
        text.append(piece, style=("cyan " if pos >= len(prompt_ids) else "") + style)
    console = Console()
    console.print(text)
    console.print(f"[dim]{len(out) - len(prompt_ids)} new tokens (cyan); attention fraction "
                  f"{modes.float().mean().item():.3f} over {modes.shape[-1]} positions x {modes.shape[0]} layers; "
                  f"bold = attention mode[/dim]")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
