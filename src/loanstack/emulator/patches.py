"""Every change the emulator makes to moto, in one list: target, replacement, and why.

Nothing changes moto until `install()`; `uninstall()` puts every target back, and plain moto
works again (tests/unit/test_moto_fence.py). moto is pinned exactly (constraints.txt); the
contract test checks that each target still exists with the signature recorded here, so an
upgrade that moves one fails there, loudly, instead of somewhere inside a deployment.
"""

from __future__ import annotations

from moto.awslambda import models as lambda_models
from moto.awslambda import responses as lambda_responses
from moto.awslambda import urls as lambda_urls
from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation import responses as cfn_responses
from moto.core.responses import BaseResponse
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.iam.access_control import IAMPolicyStatement
from moto.rds.models import DBCluster, RDSBackend
from moto.rdsdata import responses as rdsdata_responses
from moto.rdsdata import urls as rdsdata_urls
from moto.s3 import notifications as s3_notifications
from moto.s3.models import FakeBucket
from moto.secretsmanager.models import SecretsManagerBackend

from loanstack.emulator import (
    asynchronous,
    data,
    dataapi,
    engine,
    fence,
    lambdas,
    monitoring,
    network,
    retention,
    storage,
)
from loanstack.emulator import secrets as secrets_ext
from loanstack.emulator.fence import Patch

LAMBDA_ACCOUNT_SETTINGS = r"{0}/(?P<api_version>[^/]+)/account-settings/?$"
DATA_API_BATCH = "{0}/BatchExecute$"

PATCHES: list[Patch] = [
    # CloudFormation: the engine (engine.py)
    Patch(parsing, "get_model_list", engine.model_list,
          "each type an extension covers is modelled by the extension, not moto",
          "()"),
    Patch(parsing, "resource_class_from_type", engine.resource_class_from_type,
          "an unknown type fails the deployment (moto skips it with a warning)",
          "(resource_type)"),
    Patch(parsing, "clean_json", engine.clean_json,
          "Fn::Cidr, Fn::GetAZs for the stack's region, {{resolve:secretsmanager:...}}",
          "(resource_json, resources_map)"),
    Patch(parsing, "parse_and_create_resource", engine.create_with_events,
          "per-resource CREATE events and a recorded failure instead of HTTP 500",
          "(logical_id, resource_json, resources_map, account_id, region_name)"),
    Patch(parsing, "parse_and_update_resource", engine.update_with_events,
          "per-resource UPDATE events and a recorded failure instead of HTTP 500",
          "(logical_id, resource_json, resources_map, account_id, region_name)"),
    Patch(parsing.ResourceMap, "_delete_resource", engine.delete_with_events,
          "per-resource DELETE events; models moto cannot delete are deleted (deletion.py)",
          "(self, parsed_resource, resource_json)"),
    Patch(parsing.ResourceMap, "delete", engine.delete_in_reverse_order,
          "dependents are deleted before what they depend on, as CloudFormation does; "
          "DeletionPolicy Retain/RetainExceptOnCreate keeps, Snapshot snapshots (retention.py)",
          "(self)"),
    Patch(parsing.ResourceMap, "load", retention.load_expanding_policies,
          "AWS::LanguageExtensions: Fn::If in DeletionPolicy/UpdateReplacePolicy resolved",
          "(self)"),
    Patch(cfn_responses.CloudFormationResponse, "list_stack_resources", engine.list_stack_resources,
          "each resource with the status its last event gave it",
          "(self)"),
    Patch(cfn_models.CloudFormationBackend, "delete_stack", engine.delete_stack,
          "DELETE_FAILED with the reason (moto answers HTTP 500) and nothing re-created later",
          "(self, name_or_stack_id)"),
    Patch(cfn_models.CloudFormationBackend, "execute_change_set", engine.execute_change_set,
          "a failed resource rolls the stack back instead of answering HTTP 500",
          "(self, change_set_name, stack_name=None)"),
    Patch(cfn_models.ChangeSet, "diff", engine.diff_with_parameters,
          "only resources that use a changed parameter are marked as changing",
          "(self)"),
    Patch(cfn_responses.CloudFormationResponse, "describe_change_set", engine.describe_change_set,
          "IncludePropertyValues, as DescribeChangeSet answers it",
          "(self)"),
    Patch(cfn_models.ChangeSet, "apply", engine.apply_change_set,
          "an update builds in dependency order and reports per-resource events",
          "(self)"),
    Patch(parsing.OutputMap, "exports", property(engine.exports_of_existing_outputs),
          "only outputs whose condition holds are exported",
          "(self)"),
    # S3 bucket policies (storage.py)
    Patch(IAMPolicyStatement, "is_action_permitted", storage.statement_permits,
          "bucket policy conditions (aws:SecureTransport) are evaluated",
          "(self, action, resource='*', principal=None, incoming_condition_values=None)"),
    Patch(FakeBucket, "get_permission", storage.bucket_permission,
          "a bucket policy is judged with the request's conditions",
          "(self, action, resource)"),
    # Secrets Manager rotation (secrets.py)
    Patch(SecretsManagerBackend, "rotate_secret", secrets_ext.rotate_secret,
          "a failing rotation step stops the rotation and leaves AWSCURRENT alone",
          "(self, secret_id, client_request_token=None, rotation_lambda_arn=None, rotation_rules=None, rotate_immediately=True)"),
    # Aurora (data.py)
    Patch(RDSBackend, "modify_db_cluster", data.modify_db_cluster,
          "a new master password pends before it applies, as RDS does it",
          "(self, kwargs)"),
    Patch(RDSBackend, "describe_db_clusters", data.describe_db_clusters,
          "a pending password change applies when due",
          "(self, db_cluster_identifier=None, filters=None)"),
    Patch(DBCluster, "endpoint", property(data.endpoint),
          "the cluster's endpoint takes MySQL logins (the emulator's MariaDB)",
          "(self)"),
    # EC2 (network.py)
    Patch(SecurityGroupBackend, "create_security_group", network.create_security_group,
          "a GroupName starting with sg- is refused, as EC2 refuses it",
          "(self, name, description, vpc_id=None, tags=None, force=False, is_default=None)"),
    # CloudTrail delivery (monitoring.py)
    Patch(BaseResponse, "call_action", monitoring.call_action,
          "every API call is recorded into the buckets of the account's logging trails",
          "(self)"),
    # Lambda (lambdas.py)
    Patch(lambda_models.LambdaFunction, "_invoke_lambda", lambdas.invoke_in_process,
          "functions run in this process (moto would need Docker)",
          "(self, event=None)"),
    Patch(lambda_models.LambdaFunction, "create_from_cloudformation_json",
          classmethod(lambdas.create_keeping_logging_config),
          "the function keeps its LoggingConfig (moto drops it)",
          "(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)"),
    Patch(lambda_models.LambdaFunction, "get_configuration", lambdas.configuration_with_logging,
          "GetFunctionConfiguration answers the LoggingConfig",
          "(self, on_create=False)"),
    Patch(s3_notifications, "_invoke_awslambda", asynchronous.invoke_async,
          "S3 notifications invoke asynchronously and concurrently, up to the function's reserved "
          "concurrency, retried twice then sent to its dead-letter queue, as Lambda does",
          "(account_id, event_body, fn_arn, region_name)"),
    Patch(lambda_urls.url_paths, LAMBDA_ACCOUNT_SETTINGS, lambda_responses.LambdaResponse.dispatch,
          "GetAccountSettings is routed (moto has no route for it)",
          None),
    Patch(lambda_responses.LambdaResponse, "get_account_settings", lambdas.get_account_settings,
          "GetAccountSettings from the functions the emulator holds",
          None),
    # RDS Data API (dataapi.py)
    Patch(rdsdata_urls.url_paths, DATA_API_BATCH, rdsdata_urls.response.dispatch,
          "BatchExecuteStatement is routed (moto has no route for it)",
          None),
    Patch(rdsdata_responses.RDSDataServiceResponse, "execute_statement", dataapi.execute_statement,
          "ExecuteStatement runs on the emulator's MariaDB (moto echoes canned results)",
          "(self)"),
    Patch(rdsdata_responses.RDSDataServiceResponse, "batch_execute_statement",
          dataapi.batch_execute_statement,
          "BatchExecuteStatement runs on the emulator's MariaDB",
          None),
]  # fmt: skip


def install() -> None:
    """Apply every patch; idempotent."""
    if not fence.applied():
        fence.apply(PATCHES)
        clear_model_caches()


def uninstall() -> None:
    """Put moto back as it was before `install()`; idempotent."""
    if fence.applied():
        fence.restore()
        clear_model_caches()


def clear_model_caches() -> None:
    """moto caches its model map from `get_model_list`: recompute it after a change."""
    for cached in (parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
