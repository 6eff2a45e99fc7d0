"""KMS keys: moto's own model passes the key policy as a dict and CloudFormation's Key/Value
tags where its backend wants a JSON string and TagKey/TagValue, so it is replaced here."""

from __future__ import annotations

import json
from typing import Any

from moto.kms.models import kms_backends

from loanstack.emulator.base import Extension, tags


class Key(Extension):
    TYPE = "AWS::KMS::Key"
    ATTRIBUTES = ("Arn", "KeyId")

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        backend: Any = kms_backends[account_id][region]
        key = backend.create_key(
            policy=json.dumps(props["KeyPolicy"]),
            key_usage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
            key_spec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
            description=props.get("Description", ""),
            tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tags(props)],
            multi_region=bool(props.get("MultiRegion")),
        )
        if props.get("EnableKeyRotation"):
            backend.enable_key_rotation(key.id)
        return cls(
            key.id,
            account_id,
            region,
            Arn=key.arn,
            KeyId=key.id,
            PendingWindowInDays=int(props.get("PendingWindowInDays", 30)),
        )

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        kms_backends[self.account_id][self.region].schedule_key_deletion(
            self.physical_id, self.attributes["PendingWindowInDays"]
        )
