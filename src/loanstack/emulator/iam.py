"""Trust policies and account-wide names, judged as AWS judges them at CreateTrail (SPEC D7).

moto stores a trail whatever its CloudWatch Logs role trusts, and lets a second trail take a
name a multi-region trail already holds. AWS does neither:

- CloudTrail assumes the role with the context its page documents (no aws:SourceArn or
  aws:SourceAccount for this role), and a trust policy that needs more makes
  CreateTrail fail with InvalidCloudWatchLogsRoleArnException; the stack rolls back.
  https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-required-policy-for-cloudwatch-logs.html
- A multi-region trail exists in every region of the account, so its name is taken everywhere:
  the same name created from another region fails with TrailAlreadyExistsException.
  https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_CreateTrail.html

IAM role and S3 bucket names are account- and partition-wide in moto already (one IAM backend
per partition, one S3 namespace): tests/unit/test_emulator_global_names.py holds moto to it.
The context each service sends is one table, `policy.ASSUME_ROLE_CONTEXT`, shared with check
LS020.
"""

from __future__ import annotations

import json
from typing import Any

from moto.cloudtrail.models import CloudTrailBackend, cloudtrail_backends
from moto.core.exceptions import JsonRESTError
from moto.iam.exceptions import NotFoundException
from moto.iam.models import iam_backends
from moto.utilities.utils import get_partition

from loanstack.emulator import fence
from loanstack.policy import allows, assume_role_request

CLOUDTRAIL = "cloudtrail.amazonaws.com"


class InvalidCloudWatchLogsRoleArnException(JsonRESTError):
    code = 400

    def __init__(self, message: str):
        super().__init__("InvalidCloudWatchLogsRoleArnException", message)


class TrailAlreadyExistsException(JsonRESTError):
    code = 400

    def __init__(self, message: str):
        super().__init__("TrailAlreadyExistsException", message)


def create_trail(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """moto's CreateTrail, after the two refusals AWS makes first."""
    is_multi_region = bool(_argument(args, kwargs, 4, "is_multi_region"))
    cw_role_arn = _argument(args, kwargs, 8, "cw_role_arn")
    refuse_taken_name(self.account_id, self.region_name, name, is_multi_region)
    if cw_role_arn:
        refuse_untrusting_role(self.account_id, self.region_name, name, str(cw_role_arn))
    return fence.original(CloudTrailBackend, "create_trail")(self, name, *args, **kwargs)


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, key: str) -> Any:
    """A create_trail argument by position after `name` (moto's signature) or by keyword."""
    return kwargs[key] if key in kwargs else (args[index] if len(args) > index else None)


def refuse_taken_name(account_id: str, region: str, name: str, is_multi_region: bool) -> None:
    """A trail name is taken in this region by a trail of it, and in every region of the
    account by a multi-region trail; a new multi-region trail needs the name free everywhere."""
    for other_region, backend in list(cloudtrail_backends[account_id].items()):
        existing = backend.trails.get(name)
        if existing is None:
            continue
        if other_region == region or existing.is_multi_region or is_multi_region:
            raise TrailAlreadyExistsException(
                f"Trail {name} already exists for customer: {account_id}"
            )


def refuse_untrusting_role(account_id: str, region: str, trail: str, role_arn: str) -> None:
    """CloudTrail assumes the role with the context it documents; a trust policy that does not
    admit that exact request makes CreateTrail fail, as on AWS."""
    partition = get_partition(region)
    try:
        role = iam_backends[account_id][partition].get_role_by_arn(role_arn)
    except NotFoundException as exc:
        raise InvalidCloudWatchLogsRoleArnException(f"Role {role_arn} does not exist") from exc
    document = role.assume_role_policy_document
    trust = json.loads(document) if isinstance(document, str) else document
    known = {
        "aws:SourceArn": f"arn:{partition}:cloudtrail:{region}:{account_id}:trail/{trail}",
        "aws:SourceAccount": account_id,
    }
    try:
        admitted = allows(trust, assume_role_request(CLOUDTRAIL, known))
    except ValueError:  # an operator the evaluator does not model: do not guess
        return
    if not admitted:
        raise InvalidCloudWatchLogsRoleArnException(
            f"Access denied. Verify in IAM that the role {role_arn} trusts {CLOUDTRAIL} "
            "as CloudTrail assumes it (CloudTrail sends no aws:SourceArn or aws:SourceAccount "
            "for its CloudWatch Logs role)."
        )
