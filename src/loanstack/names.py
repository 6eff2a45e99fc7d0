"""The template's names the tool uses, in one place: its parameters, its resources' logical ids,
the stack's name and the partition's domain. A test checks each against lib/TapStack.json, so a
rename in the template fails there, not in a command at deploy time."""

from __future__ import annotations

STACK_PREFIX = "tapstack-"  # the stack of EnvironmentSuffix s is tapstack-<s>

# Parameters (lib/TapStack.json `Parameters`)
ENVIRONMENT_TYPE = "EnvironmentType"
ENVIRONMENT_SUFFIX = "EnvironmentSuffix"
RESERVED_CONCURRENCY = "ValidationReservedConcurrency"
MIN_CAPACITY_PROD = "DBServerlessMinCapacityProd"
MAX_CAPACITY = "DBServerlessMaxCapacity"
ALARM_EMAIL = "AlarmEmail"
BACKUP_VAULT_LOCK_DAYS = "BackupVaultLockDays"
BACKUP_DAILY_RETENTION_DAYS = "BackupDailyRetentionDays"

# Outputs (lib/TapStack.json `Outputs`) the tool reads from the outputs file (aws.outputs)
VPC_ID = "VPCId"
CLUSTER_ARN = "DBClusterArn"
MASTER_SECRET_ARN = "DBSecretArn"  # noqa: S105 (an output's name, not a secret)
APP_SECRET_ARN = "AppDatabaseSecretArn"  # noqa: S105 (an output's name, not a secret)
DOCUMENTS_BUCKET = "LoanDocumentsBucketName"
VALIDATION_FUNCTION_NAME = "LoanValidationFunctionName"
ROTATION_FUNCTION_ARN = "SecretRotationLambdaArn"
DEAD_LETTER_QUEUE_URL = "ValidationDeadLetterQueueUrl"

# Resources (logical ids) whose physical names the tool needs before the stack has outputs
VALIDATION_FUNCTION = "LoanValidationFunction"

# AWS::URLSuffix per partition ("Pseudo parameters reference": amazonaws.com, and
# amazonaws.com.cn in the China Regions; the ISO partitions have their own domains):
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/pseudo-parameter-reference.html#cfn-pseudo-param-urlsuffix
# https://docs.aws.amazon.com/general/latest/gr/rande.html
URL_SUFFIXES = {
    "aws-cn": "amazonaws.com.cn",
    "aws-iso": "c2s.ic.gov",
    "aws-iso-b": "sc2s.sgov.gov",
}


def stack_name(suffix: str) -> str:
    return f"{STACK_PREFIX}{suffix}"


def url_suffix(partition: str) -> str:
    """The domain of the partition's endpoints (the standard, GovCloud and others: amazonaws.com)."""
    return URL_SUFFIXES.get(partition, "amazonaws.com")
