"""verify reads the table of a paused dev cluster (0 ACU): it waits while the cluster resumes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from loanstack.errors import DeployError
from loanstack.ops import verify_db

RESUMING = {"Error": {"Code": "DatabaseResumingException", "Message": "resuming after pause"}}


class DataApi:
    def __init__(self, resuming: int) -> None:
        self.resuming, self.calls = resuming, 0

    def execute_statement(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.resuming:
            raise ClientError(RESUMING, "ExecuteStatement")  # type: ignore[arg-type]
        rows = [{"i": "L-1", "s": "ab", "d": "APPROVED", "m": 1, "a": "100.00"}]
        return {"formattedRecords": json.dumps(rows)}


def test_d8_verify_waits_for_a_paused_cluster_to_resume() -> None:
    api = DataApi(resuming=2)
    database = verify_db.Database(api, "arn:cluster", "arn:secret", resume_poll=0)
    assert list(database.rows("incoming/x%")) == [("L-1", "ab", "APPROVED", True, "100.00")]
    assert api.calls == 3


def test_d8_a_cluster_that_never_resumes_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_db, "RESUME_SECONDS", 0)
    database = verify_db.Database(DataApi(resuming=99), "arn:cluster", "arn:secret", resume_poll=0)
    with pytest.raises(DeployError, match="the Data API failed: resuming after pause"):
        list(database.rows("incoming/x%"))
