"""Every change the emulator makes to moto, in one list: target, replacement, and why.

Nothing changes moto until `install()`; `uninstall()` puts every target back, and plain moto
works again (tests/unit/test_moto_fence.py). moto is pinned exactly (constraints.txt); the
contract test checks that each target still exists with the signature recorded here, so an
upgrade that moves one fails there, loudly, instead of somewhere inside a deployment.
"""

from __future__ import annotations

import threading

from moto import backends as moto_backends
from moto.awslambda import models as lambda_models
from moto.awslambda import responses as lambda_responses
from moto.awslambda import urls as lambda_urls
from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation import responses as cfn_responses
from moto.cloudtrail.models import CloudTrailBackend
from moto.core.responses import BaseResponse
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.iam.access_control import IAMPolicyStatement
from moto.moto_api._internal import urls as moto_api_urls
from moto.rds.models import DBCluster, RDSBackend
from moto.rds.responses import RDSResponse
from moto.rdsdata import responses as rdsdata_responses
from moto.rdsdata import urls as rdsdata_urls
from moto.s3 import notifications as s3_notifications
from moto.s3.models import FakeBucket
from moto.secretsmanager.models import SecretsManagerBackend

from loanstack.emulator import (
    audit,
    awslambda,
    awslambda_async,
    awslambda_config,
    awslambda_permission,
    backup,
    changesets,
    cloudformation,
    cloudtrail,
    cloudwatch,
    customresource,
    dispatch,
    drift,
    ec2,
    fence,
    kms,
    rds,
    rds_restore,
    rdsdata,
    retention,
    s3,
    secretsmanager,
    sns,
    stackguard,
    state,
    template_format,
)
from loanstack.emulator import iam as iam_ext
from loanstack.emulator.fence import Patch

LAMBDA_ACCOUNT_SETTINGS = r"{0}/(?P<api_version>[^/]+)/account-settings/?$"
DATA_API_BATCH = "{0}/BatchExecute$"
FAULTS_CONTROL = "{0}/moto-api/loanstack/faults$"
# Extensions no patch below names, imported for their registration: importing an extension
# adds it to base.EXTENSIONS, which `model_list` hands to moto while the patches are installed.
REGISTERED_ONLY = (audit, awslambda_permission, backup, cloudwatch, kms, sns)

PATCHES: list[Patch] = [
    # CloudFormation: the engine (cloudformation.py)
    Patch(parsing, "get_model_list", cloudformation.model_list,
          "each type an extension covers is modelled by the extension, not moto",
          "()"),
    Patch(parsing, "resource_class_from_type", cloudformation.resource_class_from_type,
          "an unknown type fails the deployment (moto skips it with a warning)",
          "(resource_type)"),
    Patch(parsing, "clean_json", cloudformation.clean_json,
          "Fn::Cidr, Fn::GetAZs for the stack's region, {{resolve:secretsmanager:...}}",
          "(resource_json, resources_map)"),
    Patch(parsing, "parse_and_create_resource", cloudformation.create_with_events,
          "per-resource CREATE events and a recorded failure instead of HTTP 500",
          "(logical_id, resource_json, resources_map, account_id, region_name)"),
    Patch(parsing, "parse_and_update_resource", cloudformation.update_with_events,
          "per-resource UPDATE events and a recorded failure instead of HTTP 500",
          "(logical_id, resource_json, resources_map, account_id, region_name)"),
    Patch(parsing.ResourceMap, "_delete_resource", cloudformation.delete_with_events,
          "per-resource DELETE events; models moto cannot delete are deleted (deletion.py)",
          "(self, parsed_resource, resource_json)"),
    Patch(parsing.ResourceMap, "delete", cloudformation.delete_in_reverse_order,
          "dependents are deleted before what they depend on, as CloudFormation does; "
          "DeletionPolicy Retain/RetainExceptOnCreate keeps, Snapshot snapshots (retention.py)",
          "(self)"),
    Patch(parsing.ResourceMap, "load", retention.load_expanding_policies,
          "AWS::LanguageExtensions: Fn::If in DeletionPolicy/UpdateReplacePolicy resolved",
          "(self)"),
    Patch(cfn_responses.CloudFormationResponse, "list_stack_resources", cloudformation.list_stack_resources,
          "each resource with the status its last event gave it",
          "(self)"),
    Patch(cfn_models.CloudFormationBackend, "delete_stack", cloudformation.delete_stack,
          "DELETE_FAILED with the reason (moto answers HTTP 500) and nothing re-created later "
          "(after a success, and after a failure what was deleted stays deleted); "
          "termination protection refuses the delete, as AWS does "
          "(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-protect-stacks.html)",
          "(self, name_or_stack_id)"),
    Patch(cfn_models.CloudFormationBackend, "execute_change_set", cloudformation.execute_change_set,
          "a failed resource rolls the stack back instead of answering HTTP 500 (DisableRollback "
          "keeps it *_FAILED); a stack policy that denies a change fails the update and rolls "
          "back (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/protect-stack-resources.html); "
          "the change set's tags, role, notification ARNs and rollback triggers go to the stack",
          "(self, change_set_name, stack_name=None)"),
    Patch(cfn_models.CloudFormationBackend, "create_change_set", changesets.create_change_set,
          "one stack per name: a CREATE change set reuses the name's REVIEW_IN_PROGRESS stack "
          "and is refused for a stack that exists otherwise (moto made a twin each time)",
          "(self, stack_name, change_set_name, template, parameters, description, change_set_type, notification_arns=None, tags=None, role_arn=None)"),
    Patch(cfn_models.ChangeSet, "diff", changesets.diff_with_parameters,
          "only resources that use a changed parameter are marked as changing",
          "(self)"),
    Patch(cfn_models.Stack, "parse_template", staticmethod(template_format.parse_stack_template),
          "a JSON template is read as JSON, as CloudFormation reads it (moto's pure-Python YAML "
          "reader first: 0.5 s of CPU per read of this template, two reads a deploy); NaN and "
          "Infinity are not JSON, and a body that is not well-formed or not a mapping is a "
          "ValidationError, not HTTP 500",
          "(template)"),
    Patch(cfn_models.ChangeSet, "_parse_template", template_format.parse_change_set_template,
          "a JSON template is read as JSON (as Stack.parse_template above)",
          "(self)"),
    Patch(cfn_models.CloudFormationBackend, "validate_template", template_format.validate_template,
          "ValidateTemplate reads the body as a stack's is read first: NaN or Infinity in JSON, a "
          "body that is not well-formed or not a mapping are CloudFormation's ValidationError "
          "(moto's cfn-lint accepted them): "
          "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-formats.html",
          "(self, template)"),
    Patch(cfn_responses.CloudFormationResponse, "describe_change_set", changesets.describe_change_set,
          "IncludePropertyValues, as DescribeChangeSet answers it",
          "(self)"),
    Patch(cfn_models.ChangeSet, "apply", changesets.apply_change_set,
          "an update builds in dependency order and reports per-resource events",
          "(self)"),
    Patch(parsing.OutputMap, "exports", property(cloudformation.exports_of_existing_outputs),
          "only outputs whose condition holds are exported",
          "(self)"),
    # CloudFormation: stack-level protections (stackguard.py) and drift detection (drift.py)
    Patch(cfn_responses.CloudFormationResponse, "update_termination_protection",
          stackguard.update_termination_protection,
          "UpdateTerminationProtection (moto has no handler): "
          "https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_UpdateTerminationProtection.html",
          None),
    Patch(cfn_responses.CloudFormationResponse, "create_change_set", stackguard.create_change_set,
          "the change set keeps its RollbackConfiguration (moto drops it): "
          "https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_RollbackConfiguration.html",
          "(self)"),
    Patch(cfn_responses.CloudFormationResponse, "execute_change_set", stackguard.execute_change_set,
          "ExecuteChangeSet's DisableRollback is read (moto reads only the names): "
          "https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html",
          "(self)"),
    Patch(cfn_responses.CloudFormationResponse, "detect_stack_drift", drift.detect_stack_drift,
          "DetectStackDrift (moto has none) for Lambda functions and security groups: "
          "https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DetectStackDrift.html",
          None),
    Patch(cfn_responses.CloudFormationResponse, "describe_stack_drift_detection_status",
          drift.describe_stack_drift_detection_status,
          "DescribeStackDriftDetectionStatus: detection is complete at once",
          None),
    Patch(cfn_responses.CloudFormationResponse, "describe_stack_resource_drifts",
          drift.describe_stack_resource_drifts,
          "DescribeStackResourceDrifts with expected and actual properties and their differences: "
          "https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_StackResourceDrift.html",
          None),
    # The server's dispatch (dispatch.py)
    Patch(moto_backends, "list_of_moto_modules", dispatch.moto_modules,
          "moto's packages are read once, not listed and stat'ed twice per request (the same "
          "answer; about 1.3 ms of the server's CPU per request)",
          "()"),
    Patch(BaseResponse, "_enrich_response", staticmethod(dispatch.enrich_response),
          "an answer's body goes through moto's `<RequestId>` substitution only when it holds that "
          "element (the same answer; the regex over a 600 KB Data API page cost ~9 ms of CPU)",
          "(headers, body)"),
    # S3 bucket policies (s3.py)
    Patch(IAMPolicyStatement, "is_action_permitted", s3.statement_permits,
          "bucket policy conditions (aws:SecureTransport) are evaluated",
          "(self, action, resource='*', principal=None, incoming_condition_values=None)"),
    Patch(FakeBucket, "get_permission", s3.bucket_permission,
          "a bucket policy is judged with the request's conditions",
          "(self, action, resource)"),
    # Secrets Manager rotation (secretsmanager.py)
    Patch(SecretsManagerBackend, "rotate_secret", secretsmanager.rotate_secret,
          "a failing rotation step stops the rotation and leaves AWSCURRENT alone",
          "(self, secret_id, client_request_token=None, rotation_lambda_arn=None, rotation_rules=None, rotate_immediately=True)"),
    # Aurora (rds.py)
    Patch(RDSBackend, "modify_db_cluster", rds.modify_db_cluster,
          "a new master password pends before it applies, as RDS does it",
          "(self, kwargs)"),
    Patch(RDSBackend, "describe_db_clusters", rds.describe_db_clusters,
          "a pending password change applies when due",
          "(self, db_cluster_identifier=None, filters=None)"),
    Patch(DBCluster, "endpoint", property(rds.endpoint),
          "the cluster's endpoint takes MySQL logins (the emulator's MariaDB)",
          "(self)"),
    # Aurora's data in snapshots and restores (rds_restore.py, clusterdata.py)
    Patch(RDSBackend, "create_db_cluster", rds_restore.create_db_cluster,
          "an identifier in use is refused (DBClusterAlreadyExistsFault); DatabaseName gets a "
          "schema of the cluster's own "
          "(https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html)",
          "(self, kwargs)"),
    Patch(RDSBackend, "delete_db_cluster", rds_restore.delete_db_cluster,
          "the cluster's data and its automated snapshots (DeleteAutomatedBackups' default) go "
          "with it, after its final snapshot "
          "(https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBCluster.html)",
          "(self, cluster_identifier, snapshot_name=None)"),
    Patch(RDSBackend, "create_db_cluster_snapshot", rds_restore.create_db_cluster_snapshot,
          "a cluster snapshot holds a copy of the cluster's data "
          "(https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_CreateSnapshotCluster.html)",
          "(self, db_cluster_identifier, db_cluster_snapshot_identifier, snapshot_type='manual', tags=None)"),
    Patch(RDSBackend, "delete_db_cluster_snapshot", rds_restore.delete_db_cluster_snapshot,
          "deleting a snapshot deletes its copy of the data "
          "(https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBClusterSnapshot.html)",
          "(self, db_snapshot_identifier)"),
    Patch(RDSBackend, "restore_db_cluster_from_snapshot", rds_restore.restore_db_cluster_from_snapshot,
          "a new cluster with the snapshot's data; an identifier in use, a missing subnet group or "
          "snapshot refused "
          "(https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreDBClusterFromSnapshot.html)",
          "(self, from_snapshot_id, overrides)"),
    Patch(RDSBackend, "restore_db_cluster_to_point_in_time", rds_restore.restore_db_cluster_to_point_in_time,
          "a new cluster with the source's data; a time outside the window, an identifier in use, "
          "a missing subnet group refused; the emulator restores only past the last write "
          "(https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreDBClusterToPointInTime.html)",
          "(self, db_cluster_identifier, source_db_cluster_identifier, restore_type='full-copy', restore_to_time=None, use_latest_restorable_time=False, **overrides)"),
    Patch(RDSResponse, "enable_http_endpoint", rds_restore.enable_http_endpoint,
          "EnableHttpEndpoint turns a cluster's Data API on (moto has no such action) "
          "(https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_EnableHttpEndpoint.html)",
          None),
    # EC2 (ec2.py)
    Patch(SecurityGroupBackend, "create_security_group", ec2.create_security_group,
          "a GroupName starting with sg- is refused, as EC2 refuses it",
          "(self, name, description, vpc_id=None, tags=None, force=False, is_default=None)"),
    # CloudTrail delivery (cloudtrail.py)
    Patch(BaseResponse, "call_action", cloudtrail.call_action,
          "every API call is recorded into the buckets of the account's logging trails",
          "(self)"),
    # CloudTrail's trust in its CloudWatch Logs role, account-wide trail names (iam.py)
    Patch(CloudTrailBackend, "create_trail", iam_ext.create_trail,
          "CreateTrail assumes the CloudWatch Logs role with the context CloudTrail sends "
          "(InvalidCloudWatchLogsRoleArnException otherwise) and a multi-region trail's name is "
          "taken in every region (TrailAlreadyExistsException): "
          "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-required-policy-for-cloudwatch-logs.html",
          "(self, name, bucket_name, s3_key_prefix, sns_topic_name, is_global, is_multi_region, log_validation, is_org_trail, cw_log_group_arn, cw_role_arn, kms_key_id, tags_list)"),
    # Lambda (awslambda.py, awslambda_config.py, awslambda_async.py)
    Patch(lambda_models.LambdaFunction, "_invoke_lambda", awslambda.invoke_in_process,
          "functions run without Docker: in a warm sandbox process per concurrent execution on the "
          "detached emulator (awslambda_sandbox.py), as threads of the embedded one; stopped at "
          "their Timeout as Lambda stops them (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html, "
          "https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html)",
          "(self, event=None)"),
    Patch(lambda_models.LambdaFunction, "create_from_cloudformation_json",
          classmethod(awslambda_config.create_keeping_logging_config),
          "the function keeps its LoggingConfig (moto drops it)",
          "(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)"),
    Patch(lambda_models.LambdaFunction, "update_from_cloudformation_json",
          classmethod(awslambda_config.update_from_template),
          "a stack update zips the inline source as create does (moto left every updated "
          "function failing with 'File is not a zip file') and keeps LoggingConfig, "
          "DeadLetterConfig and reserved concurrency in step with the template",
          "(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)"),
    Patch(lambda_models.LambdaFunction, "get_configuration", awslambda_config.configuration_with_logging,
          "GetFunctionConfiguration answers the LoggingConfig",
          "(self, on_create=False)"),
    Patch(threading.Thread, "start", awslambda.start_recording_creator,
          "not moto: Python's threads record the thread that started them, so the lines of the "
          "threads a handler starts reach its log stream, and a concurrent invocation's do not "
          "(https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html)",
          "(self)"),
    Patch(lambda_models.LambdaBackend, "delete_function", awslambda_config.delete_function_and_sandboxes,
          "a deleted function's idle sandbox processes are killed, its busy ones when their "
          "invocation returns (they lived, ~44 MB each, until the emulator stopped: one per "
          "deploy and destroy on the detached emulator)",
          "(self, function_name, qualifier=None)"),
    Patch(lambda_models.LambdaBackend, "invoke", awslambda_config.invoke_unless_throttled,
          "an Event Invoke is queued as an S3 notification's is (202 at once); a synchronous "
          "Invoke of a function whose reserved concurrency is 0 is refused with "
          "TooManyRequestsException (429); moto ran both inside the request "
          "(https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_Errors)",
          "(self, function_name, qualifier, body, headers, response_headers)"),
    Patch(s3_notifications, "_invoke_awslambda", awslambda_async.invoke_async,
          "S3 notifications invoke asynchronously and concurrently, up to the function's reserved "
          "concurrency, retried twice then sent to its dead-letter queue, as Lambda does; a "
          "throttled function (reserved concurrency 0) runs none: its events wait until their "
          "maximum age or its deletion; a test can make one arrive twice "
          "(https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html)",
          "(account_id, event_body, fn_arn, region_name)"),
    Patch(lambda_urls.url_paths, LAMBDA_ACCOUNT_SETTINGS, lambda_responses.LambdaResponse.dispatch,
          "GetAccountSettings is routed (moto has no route for it)",
          None),
    Patch(lambda_responses.LambdaResponse, "get_account_settings", awslambda_config.get_account_settings,
          "GetAccountSettings from the functions the emulator holds",
          None),
    # RDS Data API (rdsdata.py)
    Patch(rdsdata_urls.url_paths, DATA_API_BATCH, rdsdata_urls.response.dispatch,
          "BatchExecuteStatement is routed (moto has no route for it)",
          None),
    Patch(rdsdata_responses.RDSDataServiceResponse, "execute_statement", rdsdata.execute_statement,
          "ExecuteStatement runs on the emulator's MariaDB (moto echoes canned results): pooled "
          "connections, errors per cluster kind, the documented limits "
          "(https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html)",
          "(self)"),
    Patch(rdsdata_responses.RDSDataServiceResponse, "batch_execute_statement",
          rdsdata.batch_execute_statement,
          "BatchExecuteStatement runs on the emulator's MariaDB, one transaction per batch "
          "(https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_BatchExecuteStatement.html)",
          None),
    # Custom resources (customresource.py)
    Patch(moto_api_urls.url_paths, customresource.RESPONSE_ROUTE, customresource.answer,
          "a custom resource's function answers to its ResponseURL on the emulator's own server "
          "(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html)",
          None),
    # Fault injection (faults.py, state.py)
    Patch(moto_api_urls.url_paths, FAULTS_CONTROL, state.control_request,
          "a detached emulator takes fault requests from tests in other processes (moto has none)",
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
