"""The farm's AI autonomy: the tier, the auto allow-list, per-type overrides and the draft TTL."""

from __future__ import annotations

import datetime as dt
import re

import click

from .base import (
    FarmopsGroup,
    as_member,
    emit,
    emit_one,
    json_option,
    jsonable,
    main,
    member_options,
    output_format,
)

TIERS = ("suggest", "draft", "auto")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_SHORT = re.compile(r"(?:(\d{1,7})d)?(?:(\d{1,7})h)?(?:(\d{1,9})m)?(?:(\d{1,11})s)?")
_ISO = re.compile(r"P(?:(\d{1,7})D)?(?:T(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,11})S)?)?")


class DurationType(click.ParamType):
    """A duration: ``90m``, ``48h``, ``1d12h``, ``30s`` or ISO 8601 (``PT48H``, ``P2D``)."""

    name = "duration"

    def convert(self, value, param, ctx):
        """The value as a :class:`datetime.timedelta`."""
        if isinstance(value, dt.timedelta):
            return value
        text = str(value).strip()
        match = _SHORT.fullmatch(text.lower()) or _ISO.fullmatch(text.upper())
        if not text or match is None or not any(match.groups()):
            shown = text if len(text) <= 40 else text[:37] + "..."
            self.fail(f"{shown!r} is not a duration (90m, 48h, 1d12h, PT48H)", param, ctx)
        seconds = sum(int(n) * u for n, u in zip(match.groups(), _UNITS.values(), strict=True) if n)
        return dt.timedelta(seconds=seconds)


DURATION = DurationType()


def _override(value: str) -> tuple[str, str]:
    name, sep, tier = value.partition("=")
    if not sep or not name.strip() or tier.strip() not in TIERS:
        raise click.BadParameter(f"{value!r}: give TYPE=suggest|draft|auto", param_hint="'--type'")
    return name.strip(), tier.strip()


@main.group(cls=FarmopsGroup)
def autonomy() -> None:
    """What the AI may write on its own in this farm, and how long its drafts wait."""


@autonomy.command("show")
@json_option
@member_options
def autonomy_show(as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's settings, then each record type's class and the autonomy it resolves to now."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        settings = t.autonomy()
    if output_format(as_json) == "json":
        emit_one(settings, True)
        return
    types = settings.pop("types")
    if output_format(as_json) == "csv":
        emit(types, False, ["record_type", "class", "effective"])
        return
    settings["draft_ttl"] = jsonable(settings["draft_ttl"])
    emit_one(settings, False)
    emit(types, False, ["record_type", "class", "effective"], title="autonomy per record type")


@autonomy.command("set")
@click.option("--tier", type=click.Choice(TIERS), help="The farm-wide tier.")
@click.option(
    "--auto",
    "auto_types",
    help="Comma-separated record types the AI may write directly at tier auto ('' = none).",
)
@click.option(
    "--type",
    "overrides",
    multiple=True,
    metavar="TYPE=TIER",
    help="A per-type override (repeatable); financial and destructive types stay draft whatever it says.",
)
@click.option("--clear-types", is_flag=True, help="Drop every per-type override (before any --type).")
@click.option(
    "--draft-ttl", type=DURATION, help="How long new drafts wait for a human: 5m to 30d (90m, 48h, P2D)."
)
@member_options
def autonomy_set(
    tier, auto_types, overrides, clear_types, draft_ttl, farm_id, user_id, dsn, data_dir
) -> None:
    """Change the farm's autonomy settings and/or draft TTL (owner only); each change is recorded."""
    parsed = dict(_override(o) for o in overrides)
    if tier is None and auto_types is None and not parsed and not clear_types and draft_ttl is None:
        raise click.UsageError("nothing to set: give --tier, --auto, --type, --clear-types or --draft-ttl")
    categories = None
    if auto_types is not None:
        categories = [n.strip() for n in auto_types.split(",") if n.strip()]
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        if tier is not None or categories is not None or parsed or clear_types:
            current = {} if clear_types else dict(t.autonomy()["ai_record_autonomy"])
            t.set_autonomy(
                tier=tier,
                auto_categories=categories,
                record_autonomy={**current, **parsed} if (parsed or clear_types) else None,
            )
        if draft_ttl is not None:
            t.set_draft_ttl(draft_ttl)
        settings = t.autonomy()
    settings.pop("types")
    settings["draft_ttl"] = jsonable(settings["draft_ttl"])
    emit_one(settings, False)
