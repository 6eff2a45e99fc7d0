"""Lambda permissions: moto's model keeps no id, so a stack can neither list nor remove one."""

from __future__ import annotations

import json
import uuid
from typing import Any

from moto.awslambda.utils import get_backend

from loanstack.emulator.base import Extension


class Permission(Extension):
    TYPE = "AWS::Lambda::Permission"

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        sid = f"{name}-{uuid.uuid4().hex[:12]}"
        statement = {"StatementId": sid, **{k: v for k, v in props.items() if k != "FunctionName"}}
        backend: Any = get_backend(account_id, region)
        backend.add_permission(props["FunctionName"], None, json.dumps(statement))
        return cls(sid, account_id, region, FunctionName=props["FunctionName"])

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        backend: Any = get_backend(self.account_id, self.region)
        backend.remove_permission(self.attributes["FunctionName"], self.physical_id)
