"""One documented code per distinct error: every code farmops.error_codes() lists is raised somewhere
in sql/, and every OF code raised in sql/ is listed (and so mapped, see test_client_errors.py)."""

from __future__ import annotations

import re

from conftest import REPO

#: Codes raised by the Python client rather than by sql/ (none today: add them here, with why).
CLIENT_SIDE: set[str] = set()


def raised_in_sql() -> dict[str, list[str]]:
    sites: dict[str, list[str]] = {}
    for path in sorted((REPO / "sql").rglob("*.sql")):
        if path.name == "install.sql":
            continue
        for code in re.findall(r"ERRCODE\s*=\s*'(OF[0-9A-Z]{3})'", path.read_text()):
            sites.setdefault(code, []).append(str(path.relative_to(REPO)))
    return sites


def test_every_documented_code_is_raised_and_every_raised_code_is_documented(app):
    documented = {code for (code,) in app.execute("SELECT sqlstate FROM farmops.error_codes()")}
    raised = set(raised_in_sql())
    assert sorted(documented - raised - CLIENT_SIDE) == [], "documented but never raised"
    assert sorted(raised - documented) == [], "raised but not documented in 00_core/errors.sql"
    assert len(raised) >= 25  # the scan found the RAISE sites at all
