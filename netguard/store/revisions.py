"""The schema revision this code needs, read from the migration files without Alembic.

Importing Alembic costs about 0.2 s, and every CLI command checks the schema before it
touches the database; so the head is found by reading ``revision`` and
``down_revision`` from ``migrations/versions/*.py``. A test holds this equal to Alembic's
own answer.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from netguard.errors import StoreError

VERSIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"
_REVISION = re.compile(r"^revision(?:\s*:\s*[^=]+)?\s*=\s*(.+)$", re.MULTILINE)
_DOWN = re.compile(r"^down_revision(?:\s*:\s*[^=]+)?\s*=\s*(.+)$", re.MULTILINE)


def head_revision(versions: Path = VERSIONS_DIR) -> str:
    """The newest migration revision shipped with this code.

    Raises:
        StoreError: The revision files do not form a single head.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev = _REVISION.search(text)
        if rev is None:
            continue
        revisions.add(str(ast.literal_eval(rev.group(1).strip())))
        down = _DOWN.search(text)
        value = ast.literal_eval(down.group(1).strip()) if down else None
        if isinstance(value, str):
            parents.add(value)
        elif isinstance(value, tuple | list):
            parents.update(str(v) for v in value)
    heads = revisions - parents
    if len(heads) != 1:
        raise StoreError(f"migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()
