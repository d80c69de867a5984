"""One governed assistant run from the command line."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from ..testing import STOP_REASONS, FakeBedrock, Turn, fake_bedrock_client
from .base import (
    POSITIVE_INT32,
    bedrock_from_env,
    embedder_for,
    embedder_option,
    json_option,
    jsonable,
    main,
    member_options,
    need_member,
    open_client,
)

#: The most a prompt may be (the assistant sends it to the model, so a runaway file is refused here).
MAX_PROMPT_CHARS = 100_000
SCRIPT_HELP = """\b
A --script FILE is a JSON list of the model's turns, replayed in order, then "(scripted) noted.":
  {"text": "..."}                                  an answer
  {"tools": [{"name": "create_note", "input": {"body": "..."}}], "text": "..."}
                                                   tool calls (a draft or a record each)
  optional on each: "input_tokens", "output_tokens", "stop_reason"."""


def read_prompt(text: str | None, file: Path | None) -> str:
    """The prompt from TEXT, ``-`` (stdin) or --file; a usage error if none, both, or it is blank."""
    if text is not None and file is not None:
        raise click.UsageError("give the prompt as TEXT, - (stdin) or --file, not both")
    if file is not None:
        try:
            prompt = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise click.UsageError(f"{file} is not UTF-8 text") from exc
    elif text == "-":
        prompt = sys.stdin.read()
    elif text is None:
        raise click.UsageError("give the prompt as TEXT, - (stdin) or --file F")
    else:
        prompt = text
    if not prompt.strip():
        raise click.UsageError("the prompt is empty: nothing was reserved or charged")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise click.UsageError(f"the prompt is {len(prompt)} characters; at most {MAX_PROMPT_CHARS}")
    return prompt


def script_turns(path: Path) -> list[Turn]:
    """The turns of a --script FILE (see SCRIPT_HELP); a usage error naming the first bad turn."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.UsageError(f"--script {path} is not a JSON file: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise click.UsageError(f"--script {path} must be a non-empty JSON list of turns")
    return [_turn(i, turn) for i, turn in enumerate(data)]


def _turn(i: int, turn: Any) -> Turn:
    where = f"--script turn {i}"
    if not isinstance(turn, dict) or not set(turn) <= {
        "text",
        "tools",
        "input_tokens",
        "output_tokens",
        "stop_reason",
    }:
        raise click.UsageError(f"{where}: an object of text, tools, input_tokens, output_tokens, stop_reason")
    text = turn.get("text")
    if text is not None and not isinstance(text, str):
        raise click.UsageError(f"{where}: text must be a string")
    tokens = {}
    for key in ("input_tokens", "output_tokens"):
        if key in turn:
            if (
                not isinstance(turn[key], int)
                or isinstance(turn[key], bool)
                or not 0 <= turn[key] <= 1_000_000
            ):
                raise click.UsageError(f"{where}: {key} must be an integer 0..1000000")
            tokens[key] = turn[key]
    tools = turn.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            raise click.UsageError(f"{where}: tools must be a non-empty list")
        calls = []
        for call in tools:
            if not (
                isinstance(call, dict)
                and isinstance(call.get("name"), str)
                and isinstance(call.get("input", {}), dict)
            ):
                raise click.UsageError(f'{where}: each tool is {{"name": "...", "input": {{...}}}}')
            calls.append((call["name"], call.get("input", {})))
        return FakeBedrock.tool_use(*calls, text=text, **tokens)
    if text is None:
        raise click.UsageError(f"{where}: give text, tools or both")
    stop = turn.get("stop_reason", "end_turn")
    if stop not in STOP_REASONS or stop == "tool_use":
        raise click.UsageError(
            f"{where}: stop_reason must be one of {', '.join(STOP_REASONS[:1] + STOP_REASONS[2:])}"
        )
    return FakeBedrock.text(text, stop_reason=stop, **tokens)


@main.command("ask", cls=click.Command, epilog=SCRIPT_HELP)
@click.argument("text", required=False)
@click.option(
    "--file",
    "prompt_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the prompt from F.",
)
@click.option("--feature", default="assistant", show_default=True)
@click.option("--max-tokens", type=POSITIVE_INT32, default=512, show_default=True)
@click.option("--model", envvar="FARMOPS_MODEL", help="Bedrock model id (env FARMOPS_MODEL).")
@click.option("--fake", is_flag=True, help="Answer with FakeBedrock (scripted, offline) instead of AWS.")
@click.option(
    "--script",
    "script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --fake: replay these model turns (tool calls included; see below).",
)
@embedder_option
@json_option
@member_options
def ask_cmd(
    text,
    prompt_file,
    feature,
    max_tokens,
    model,
    fake,
    script,
    embedder,
    as_json,
    farm_id,
    user_id,
    dsn,
    data_dir,
) -> None:
    """One governed assistant run: reserve, retrieve, Converse with tools, settle.

    The prompt is TEXT, - (read stdin) or --file F; an empty one is refused before anything is
    reserved. Offline: --fake, and --script FILE to replay the model's turns, so that the draft
    flow (tool call -> draft -> farmops drafts confirm) can be tried without AWS.
    """
    farm_id, user_id = need_member(farm_id, user_id)
    if script is not None and not fake:
        raise click.UsageError("--script replays a fake model: give --fake too")
    prompt = read_prompt(text, prompt_file)
    if fake:
        turns = script_turns(script) if script is not None else []
        click.echo(f"Bedrock: {FakeBedrock.LABEL}", err=True)
        bedrock = fake_bedrock_client(FakeBedrock(turns, default=FakeBedrock.text("(scripted) noted.")))
    else:
        bedrock = bedrock_from_env()
    with (
        open_client(dsn, data_dir, bedrock=bedrock, embedder=embedder_for(embedder, bedrock)) as client,
        client.tenant(farm_id, user_id) as t,
    ):
        result = t.ask(prompt, feature=feature, max_tokens=max_tokens, model=model)
    if as_json:
        click.echo(json.dumps(jsonable(dataclasses.asdict(result)), indent=2, ensure_ascii=False))
        return
    click.echo(result.text)
    click.echo(
        f"-- run {result.run_id} {result.status} ({result.stop_reason}); credits reserved "
        f"{result.credits_reserved}, charged {result.credits_charged}; drafts {len(result.drafts)}, "
        f"written {len(result.records)}, refused {len(result.refused)}",
        err=True,
    )
    for draft in result.drafts:
        click.echo(f"-- draft {draft}: farmops drafts confirm {draft}", err=True)
