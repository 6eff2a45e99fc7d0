"""The client's contract with the template (SPEC R1b): the names their pipeline and unit tests
already use. One list, here; check LS002 holds the template to it and the post-deploy tests
read the outputs through it, so nobody keeps a second copy that can go stale."""

from __future__ import annotations

# logical id -> the condition under which it exists (None: in every environment)
RESOURCES: dict[str, str | None] = {
    "VPC": None,
    "NATGateway1": None,
    "NATGateway2": "IsProduction",
    "KMSKey": None,
    "KMSKeyAlias": None,
    "DBSubnetGroup": None,
    "DBSecurityGroup": None,
    "DBCluster": None,
    "DBInstance1": None,
    "DBInstance2": "IsProduction",
    "DBSecret": None,
    "SecretRotationLambdaRole": None,
    "SecretRotationLambda": None,
    "SecretRotationSchedule": None,
    "LambdaSecurityGroup": None,
    "LoanValidationFunction": None,
    "LoanValidationLogGroup": None,
    "LoanDocumentsBucket": None,
}

# the type each id must keep (the client's tests assert on type as well as on name)
TYPES: dict[str, str] = {
    "VPC": "AWS::EC2::VPC",
    "NATGateway1": "AWS::EC2::NatGateway",
    "NATGateway2": "AWS::EC2::NatGateway",
    "KMSKey": "AWS::KMS::Key",
    "KMSKeyAlias": "AWS::KMS::Alias",
    "DBSubnetGroup": "AWS::RDS::DBSubnetGroup",
    "DBSecurityGroup": "AWS::EC2::SecurityGroup",
    "DBCluster": "AWS::RDS::DBCluster",
    "DBInstance1": "AWS::RDS::DBInstance",
    "DBInstance2": "AWS::RDS::DBInstance",
    "DBSecret": "AWS::SecretsManager::Secret",
    "SecretRotationLambdaRole": "AWS::IAM::Role",
    "SecretRotationLambda": "AWS::Lambda::Function",
    "SecretRotationSchedule": "AWS::SecretsManager::RotationSchedule",
    "LambdaSecurityGroup": "AWS::EC2::SecurityGroup",
    "LoanValidationFunction": "AWS::Lambda::Function",
    "LoanValidationLogGroup": "AWS::Logs::LogGroup",
    "LoanDocumentsBucket": "AWS::S3::Bucket",
}

CONDITIONS = ("IsProduction",)

OUTPUTS = (
    "VPCId",
    "PublicSubnet1",
    "PublicSubnet2",
    "PrivateSubnet1",
    "PrivateSubnet2",
    "DBClusterEndpoint",
    "DBSecretArn",
    "LoanDocumentsBucketName",
    "LoanValidationFunctionArn",
    "LoanValidationFunctionName",
    "KMSKeyId",
)

# resources whose console entry the client finds by its Name tag
NAME_TAGGED = (
    "VPC",
    "PublicSubnet1",
    "PublicSubnet2",
    "PrivateSubnet1",
    "PrivateSubnet2",
    "DBCluster",
    "LoanValidationFunction",
)

# Property-level expectations of the client's tests (SPEC R1b), adopted because AWS accepts each:
# (logical id, property, the exact value their tests compare).
PROPERTIES: tuple[tuple[str, str, object], ...] = (
    # RDS takes a key id, key ARN or alias for KmsKeyId; their tests compare the Ref form.
    ("DBCluster", "KmsKeyId", {"Ref": "KMSKey"}),
)

# logical id -> what its DependsOn must name (their tests read DependsOn, not a Ref)
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "LoanValidationFunction": ("LoanValidationLogGroup",),
}

# parameter -> (attribute, value) their tests assert
PARAMETERS: tuple[tuple[str, str, object], ...] = (("EnvironmentSuffix", "MinLength", 1),)

# parameter -> prefix one of its AllowedValues must start with (at least one db.r5 class:
# Aurora MySQL 3 supports db.r5, and the Data API runs on every non-T class)
OFFERED: tuple[tuple[str, str], ...] = (("DBInstanceClass", "db.r5."),)
