"""A migration manifest checked later (`loanstack verify --manifest FILE`): read back as
`manifest.Recorder` wrote it, then compared with the export and the database as they are now
(SPEC D8: a migration is proven, also after the fact)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from loanstack.errors import UsageError
from loanstack.ops.manifest import VERSION, Manifest
from loanstack.ops.verify import Reconciliation


def read(path: Path) -> Manifest:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read manifest {path}: {exc.strerror}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not a manifest (not JSON): {exc}") from exc
    if not isinstance(found, dict) or found.get("manifestVersion") != VERSION:
        raise UsageError(f"{path} is not a loanstack migration manifest (version {VERSION})")
    return cast(Manifest, found)  # keys as `Recorder.document` wrote them (`check` reads them)


def check(document: Mapping[str, Any], result: Reconciliation) -> list[str]:
    """What no longer agrees between the manifest, the export as it is now and the database as
    it is now (reconciled by `verify`); empty when everything does."""
    found: list[str] = []
    export = document.get("export", {})
    if export.get("sha256") != result.sha256:
        found.append(
            f"the export's SHA-256 is {result.sha256}, the manifest says {export.get('sha256')}"
        )
    if export.get("bytes") != result.bytes:
        found.append(
            f"the export has {result.bytes} bytes, the manifest says {export.get('bytes')}"
        )
    if not str(document.get("migration", "")).startswith(result.id_digest[:24]):
        found.append(f"the export is not the one of migration {document.get('migration')}")
    totals = document.get("controlTotals") or {}
    now = {"source": result.source.as_dict(), "recorded": result.recorded.as_dict()}
    if not totals:
        found.append("the manifest has no control totals (the run was not verified)")
    for side in ("source", "recorded"):
        if totals and totals.get(side) != now[side]:
            found.append(
                f"{side} control totals now {now[side]}, the manifest says {totals.get(side)}"
            )
    if not result.reconciled:
        found.append("the export does not reconcile with the database now")
    return found
