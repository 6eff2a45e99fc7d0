"""Item 6 of the prod profile (issue 22): AWS Backup for prod (daily kept 35 days, monthly kept a
year: parameters), its own vault encrypted with the stack's key (vault lock by parameter), an
optional cross-region copy (parameter: destination region).

NOT applied: it adds 4,295 bytes (both scripts: 10,201, the template is then 112,463 bytes) while
the budget of SPEC R1 is 102,400. Run it (then `python -m loanstack fmt`) once the
budget is decided. A cross-region copy needs a vault of the same name in the destination region.
"""

import json
import sys
from collections import OrderedDict

P = sys.argv[1] if len(sys.argv) > 1 else "lib/TapStack.json"
t = json.load(open(P), object_pairs_hook=OrderedDict)
TAGS = OrderedDict(
    [
        ("Environment", {"Ref": "EnvironmentType"}),
        ("CostCenter", {"Ref": "CostCenter"}),
        ("MigrationPhase", {"Ref": "MigrationPhase"}),
    ]
)
VAULT = "backupvault-loanprocessing-${EnvironmentSuffix}"


def after(d, anchor, items):
    out = OrderedDict()
    for k, v in d.items():
        out[k] = v
        if k == anchor:
            out.update(items)
    return out


t["Parameters"] = after(
    t["Parameters"],
    "TrailObjectLockMode",
    OrderedDict(
        [
            ("BackupDailyRetentionDays", OrderedDict([("Type", "Number"), ("Default", 35), ("MinValue", 35), ("Description", "Prod: days a daily AWS Backup recovery point is kept.")])),
            ("BackupMonthlyRetentionDays", OrderedDict([("Type", "Number"), ("Default", 365), ("MinValue", 365), ("Description", "Prod: days a monthly recovery point is kept.")])),
            ("BackupVaultLockDays", OrderedDict([("Type", "Number"), ("Default", 0), ("MinValue", 0), ("Description", "Prod: 0 = no vault lock; else the vault lock's minimum retention (days).")])),
            ("BackupCopyRegion", OrderedDict([("Type", "String"), ("Default", ""), ("AllowedPattern", "^$|^[a-z]{2}(-[a-z]+)+-[0-9]$"), ("Description", "Prod: empty, or the region recovery points are copied to.")])),
        ]
    ),
)
iface = t["Metadata"]["AWS::CloudFormation::Interface"]
iface["ParameterGroups"].append({"Label": {"default": "Prod backups"}, "Parameters": ["BackupDailyRetentionDays", "BackupMonthlyRetentionDays", "BackupVaultLockDays", "BackupCopyRegion"]})
for name, label in (("BackupDailyRetentionDays", "Daily backups kept (days)"), ("BackupMonthlyRetentionDays", "Monthly backups kept (days)"), ("BackupVaultLockDays", "Vault lock (days, 0 = none)"), ("BackupCopyRegion", "Copy backups to region (optional)")):
    iface["ParameterLabels"][name] = {"default": label}
c = t["Conditions"]
c["LocksBackupVault"] = {"Fn::And": [{"Condition": "IsProduction"}, {"Fn::Not": [{"Fn::Equals": [{"Ref": "BackupVaultLockDays"}, 0]}]}]}
c["CopiesBackups"] = {"Fn::And": [{"Condition": "IsProduction"}, {"Fn::Not": [{"Fn::Equals": [{"Ref": "BackupCopyRegion"}, ""]}]}]}
KEEP = {"Fn::If": ["IsProduction", "RetainExceptOnCreate", "Delete"]}
copy = {"Fn::If": ["CopiesBackups", [OrderedDict([("DestinationBackupVaultArn", {"Fn::Sub": "arn:${AWS::Partition}:backup:${BackupCopyRegion}:${AWS::AccountId}:backup-vault:" + VAULT}), ("Lifecycle", {"DeleteAfterDays": {"Ref": "BackupDailyRetentionDays"}})])], {"Ref": "AWS::NoValue"}]}
resources = OrderedDict(
    [
        ("BackupVault", OrderedDict([
            ("Type", "AWS::Backup::BackupVault"), ("Condition", "IsProduction"),
            ("DeletionPolicy", KEEP), ("UpdateReplacePolicy", "Delete"),
            ("Properties", OrderedDict([
                ("BackupVaultName", {"Fn::Sub": VAULT}),
                ("EncryptionKeyArn", {"Fn::GetAtt": ["KMSKey", "Arn"]}),
                ("LockConfiguration", {"Fn::If": ["LocksBackupVault", {"MinRetentionDays": {"Ref": "BackupVaultLockDays"}}, {"Ref": "AWS::NoValue"}]}),
                ("BackupVaultTags", TAGS),
            ])),
        ])),
        ("BackupRole", OrderedDict([
            ("Type", "AWS::IAM::Role"), ("Condition", "IsProduction"),
            ("Properties", OrderedDict([
                ("RoleName", {"Fn::Sub": "role-loanbackup-${AWS::Region}-${EnvironmentSuffix}"}),
                ("AssumeRolePolicyDocument", {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}]}),
                ("ManagedPolicyArns", [
                    {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"},
                    {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores"},
                ]),
                ("Tags", [{"Key": k, "Value": v} for k, v in TAGS.items()]),
            ])),
        ])),
        ("BackupPlan", OrderedDict([
            ("Type", "AWS::Backup::BackupPlan"), ("Condition", "IsProduction"),
            ("Properties", OrderedDict([
                ("BackupPlan", OrderedDict([
                    ("BackupPlanName", {"Fn::Sub": "backupplan-loanprocessing-${EnvironmentSuffix}"}),
                    ("BackupPlanRule", [
                        OrderedDict([("RuleName", "daily"), ("TargetBackupVault", {"Ref": "BackupVault"}), ("ScheduleExpression", "cron(0 5 * * ? *)"), ("Lifecycle", {"DeleteAfterDays": {"Ref": "BackupDailyRetentionDays"}}), ("CopyActions", copy)]),
                        OrderedDict([("RuleName", "monthly"), ("TargetBackupVault", {"Ref": "BackupVault"}), ("ScheduleExpression", "cron(0 5 1 * ? *)"), ("Lifecycle", {"DeleteAfterDays": {"Ref": "BackupMonthlyRetentionDays"}}), ("CopyActions", copy)]),
                    ]),
                ])),
                ("BackupPlanTags", TAGS),
            ])),
        ])),
        ("BackupSelection", OrderedDict([
            ("Type", "AWS::Backup::BackupSelection"), ("Condition", "IsProduction"),
            ("Properties", OrderedDict([
                ("BackupPlanId", {"Ref": "BackupPlan"}),
                ("BackupSelection", OrderedDict([
                    ("SelectionName", {"Fn::Sub": "backupselection-loanprocessing-${EnvironmentSuffix}"}),
                    ("IamRoleArn", {"Fn::GetAtt": ["BackupRole", "Arn"]}),
                    ("Resources", [{"Fn::GetAtt": ["DBCluster", "DBClusterArn"]}]),
                ])),
            ])),
        ])),
    ]
)
R = OrderedDict()
for k, v in t["Resources"].items():
    R[k] = v
    if k == "DBInstance2":
        R.update(resources)
t["Resources"] = R
json.dump(t, open(P, "w"), indent=2, ensure_ascii=False)
open(P, "a").write("\n")
