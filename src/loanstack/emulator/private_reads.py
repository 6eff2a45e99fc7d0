"""moto's private attributes the emulator reads (it replaces none of them: that is patches.py).

A moto upgrade may rename a private attribute without notice; reading it then fails deep inside
a deployment. Listed here, each is checked by the fence's contract test
(tests/unit/test_moto_fence.py) against the pinned moto, so an upgrade that moves one fails
there, by name. `kind` is "method" (a callable on the class) or "attribute" (set on instances
in the class's own source as `self.<name> = ...`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moto.awslambda.models import LambdaFunction
from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.core.responses import BaseResponse
from moto.ec2.models.network_acls import NetworkAcl
from moto.ec2.models.route_tables import RouteTable
from moto.iam.access_control import IAMPolicyStatement
from moto.rds.models import DBCluster


@dataclass(frozen=True)
class PrivateRead:
    owner: Any  # a moto class
    name: str
    kind: str  # "method" | "attribute"
    reader: str  # the emulator module that reads it


PRIVATE_READS: list[PrivateRead] = [
    PrivateRead(parsing.ResourceMap, "_resource_json_map", "attribute", "engine, deletion"),
    PrivateRead(parsing.ResourceMap, "_parsed_resources", "attribute", "engine, deletion"),
    PrivateRead(parsing.ResourceMap, "_template", "attribute", "engine"),
    PrivateRead(parsing.ResourceMap, "_account_id", "attribute", "engine"),
    PrivateRead(parsing.ResourceMap, "_region_name", "attribute", "engine"),
    PrivateRead(parsing.ResourceMap, "_delete_resource", "method", "engine"),
    PrivateRead(parsing.OutputMap, "_output_json_map", "attribute", "engine, deletion"),
    PrivateRead(parsing.OutputMap, "_resource_map", "attribute", "engine"),
    PrivateRead(parsing.OutputMap, "_stack_id", "attribute", "engine"),
    PrivateRead(parsing.OutputMap, "_parsed_outputs", "attribute", "deletion"),
    PrivateRead(cfn_models.Stack, "_add_stack_event", "method", "engine"),
    PrivateRead(cfn_models.Stack, "_parse_template", "method", "engine"),
    PrivateRead(cfn_models.Stack, "_create_resource_map", "method", "engine"),
    PrivateRead(cfn_models.Stack, "_create_output_map", "method", "engine"),
    PrivateRead(BaseResponse, "_get_param", "method", "engine"),
    PrivateRead(BaseResponse, "_get_bool_param", "method", "engine"),
    PrivateRead(BaseResponse, "_get_action", "method", "monitoring"),
    PrivateRead(DBCluster, "_master_user_password", "attribute", "data"),
    PrivateRead(DBCluster, "_enable_http_endpoint", "attribute", "data, dataapi"),
    PrivateRead(RouteTable, "_associations", "attribute", "deletion"),
    PrivateRead(NetworkAcl, "_associations", "attribute", "network"),
    PrivateRead(IAMPolicyStatement, "_statement", "attribute", "storage"),
    PrivateRead(
        LambdaFunction, "_create_zipfile_from_plaintext_code", "method", "awslambda_config"
    ),
    PrivateRead(LambdaFunction, "_vpc_config", "attribute", "awslambda_config"),
]
