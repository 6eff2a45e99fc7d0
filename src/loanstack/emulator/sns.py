"""SNS subscriptions, on moto's SNS backend."""

from __future__ import annotations

from typing import Any

from moto.sns.models import sns_backends

from loanstack.emulator.base import Extension


class Subscription(Extension):
    TYPE = "AWS::SNS::Subscription"
    ATTRIBUTES = ("Arn",)

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        subscription = sns_backends[account_id][region].subscribe(
            props["TopicArn"], props["Endpoint"], props["Protocol"]
        )
        return cls(subscription.arn, account_id, region, Arn=subscription.arn)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        sns_backends[self.account_id][self.region].unsubscribe(self.physical_id)
