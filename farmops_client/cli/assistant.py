"""One governed assistant run from the command line."""

from __future__ import annotations

import dataclasses
import json

import click

from ..testing import FakeBedrock, fake_bedrock_client
from .base import (
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


@main.command("ask", cls=click.Command)
@click.argument("text")
@click.option("--feature", default="assistant", show_default=True)
@click.option("--max-tokens", type=int, default=512, show_default=True)
@click.option("--model", envvar="FARMOPS_MODEL", help="Bedrock model id (env FARMOPS_MODEL).")
@click.option("--fake", is_flag=True, help="Answer with FakeBedrock (scripted echo) instead of AWS.")
@embedder_option
@json_option
@member_options
def ask_cmd(
    text, feature, max_tokens, model, fake, embedder, as_json, farm_id, user_id, dsn, data_dir
) -> None:
    """One governed assistant run: reserve, retrieve, Converse with tools, settle."""
    farm_id, user_id = need_member(farm_id, user_id)
    if fake:
        click.echo(f"Bedrock: {FakeBedrock.LABEL}", err=True)
        bedrock = fake_bedrock_client(FakeBedrock(default=lambda body: FakeBedrock.text("(scripted) noted.")))
    else:
        bedrock = bedrock_from_env()
    with (
        open_client(dsn, data_dir, bedrock=bedrock, embedder=embedder_for(embedder, bedrock)) as client,
        client.tenant(farm_id, user_id) as t,
    ):
        result = t.ask(text, feature=feature, max_tokens=max_tokens, model=model)
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
